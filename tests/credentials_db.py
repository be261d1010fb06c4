"""Open edX Credentials databases for the migration tests, written here (DDL and rows).

The tables follow Credentials' models and migrations (credentials/apps/badges/models.py,
badges 0001 + 0002; credentials/apps/credentials/models.py; core.User): multi-table
inheritance for templates (badges_badgetemplate + badges_credlybadgetemplate /
badges_accrediblegroup) and badges (credentials_usercredential + badges_credlybadge /
badges_accrediblebadge), UUIDs as 32 hex digits (Django's char(32) on MySQL and SQLite),
datetimes in UTC. One builder writes the same rows to MariaDB or to a SQLite file.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

COURSE_PASSING = "org.openedx.learning.course.passing.status.updated.v1"
CCX_PASSING = "org.openedx.learning.ccx.course.passing.status.updated.v1"
MYSQL_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

PK = "id int NOT NULL AUTO_INCREMENT PRIMARY KEY"
DDL = [
    f"CREATE TABLE django_site ({PK}, domain varchar(100) NOT NULL UNIQUE, "
    "name varchar(50) NOT NULL)",
    f"CREATE TABLE django_content_type ({PK}, app_label varchar(100) NOT NULL, "
    "model varchar(100) NOT NULL, UNIQUE (app_label, model))",
    f"CREATE TABLE core_user ({PK}, password varchar(128) NOT NULL, last_login datetime(6) "
    "NULL, is_superuser bool NOT NULL, username varchar(150) NOT NULL UNIQUE, first_name "
    "varchar(150) NOT NULL, last_name varchar(150) NOT NULL, email varchar(254) NOT NULL, "
    "is_staff bool NOT NULL, is_active bool NOT NULL, date_joined datetime(6) NOT NULL, "
    "full_name varchar(255) NULL, lms_user_id int NULL)",
    f"CREATE TABLE badges_credlyorganization ({PK}, created datetime(6) NOT NULL, modified "
    "datetime(6) NOT NULL, uuid char(32) NOT NULL UNIQUE, api_key varchar(255) NOT NULL, "
    "name varchar(255) NULL)",
    f"CREATE TABLE badges_badgetemplate ({PK}, created datetime(6) NOT NULL, modified "
    "datetime(6) NOT NULL, is_active bool NOT NULL, uuid char(32) NOT NULL UNIQUE, name "
    "varchar(255) NOT NULL, description longtext NULL, icon varchar(255) NULL, origin "
    "varchar(128) NULL, state varchar(100) NULL, site_id int NOT NULL REFERENCES "
    "django_site (id))",
    "CREATE TABLE badges_credlybadgetemplate (badgetemplate_ptr_id int NOT NULL PRIMARY KEY "
    "REFERENCES badges_badgetemplate (id), organization_id int NOT NULL REFERENCES "
    "badges_credlyorganization (id))",
    f"CREATE TABLE badges_accredibleapiconfig ({PK}, created datetime(6) NOT NULL, modified "
    "datetime(6) NOT NULL, name varchar(255) NULL, api_key varchar(255) NOT NULL)",
    "CREATE TABLE badges_accrediblegroup (badgetemplate_ptr_id int NOT NULL PRIMARY KEY "
    "REFERENCES badges_badgetemplate (id), api_config_id int NOT NULL REFERENCES "
    "badges_accredibleapiconfig (id))",
    f"CREATE TABLE badges_badgerequirement ({PK}, event_type varchar(255) NOT NULL, "
    "description longtext NULL, blend varchar(255) NULL, template_id int NOT NULL REFERENCES "
    "badges_badgetemplate (id))",
    f"CREATE TABLE badges_datarule ({PK}, data_path varchar(255) NOT NULL, operator "
    "varchar(32) NOT NULL, value varchar(255) NOT NULL, requirement_id int NOT NULL "
    "REFERENCES badges_badgerequirement (id), UNIQUE (requirement_id, data_path, operator, "
    "value))",
    f"CREATE TABLE badges_badgepenalty ({PK}, event_type varchar(255) NOT NULL, template_id "
    "int NOT NULL REFERENCES badges_badgetemplate (id))",
    f"CREATE TABLE badges_badgepenalty_requirements ({PK}, badgepenalty_id int NOT NULL "
    "REFERENCES badges_badgepenalty (id), badgerequirement_id int NOT NULL REFERENCES "
    "badges_badgerequirement (id), UNIQUE (badgepenalty_id, badgerequirement_id))",
    f"CREATE TABLE badges_penaltydatarule ({PK}, data_path varchar(255) NOT NULL, operator "
    "varchar(32) NOT NULL, value varchar(255) NOT NULL, penalty_id int NOT NULL REFERENCES "
    "badges_badgepenalty (id), UNIQUE (penalty_id, data_path, operator, value))",
    f"CREATE TABLE badges_badgeprogress ({PK}, username varchar(255) NOT NULL, template_id "
    "int NULL REFERENCES badges_badgetemplate (id))",
    f"CREATE TABLE badges_fulfillment ({PK}, blend varchar(255) NULL, progress_id int NOT "
    "NULL REFERENCES badges_badgeprogress (id), requirement_id int NULL REFERENCES "
    "badges_badgerequirement (id))",
    f"CREATE TABLE credentials_usercredential ({PK}, created datetime(6) NOT NULL, modified "
    "datetime(6) NOT NULL, credential_id int unsigned NOT NULL, username varchar(255) NOT "
    "NULL, status varchar(255) NOT NULL, uuid char(32) NOT NULL UNIQUE, "
    "credential_content_type_id int NOT NULL REFERENCES django_content_type (id), "
    "UNIQUE (username, credential_content_type_id, credential_id))",
    "CREATE TABLE badges_credlybadge (usercredential_ptr_id int NOT NULL PRIMARY KEY "
    "REFERENCES credentials_usercredential (id), state varchar(100) NOT NULL, external_uuid "
    "char(32) NULL UNIQUE)",
    "CREATE TABLE badges_accrediblebadge (usercredential_ptr_id int NOT NULL PRIMARY KEY "
    "REFERENCES credentials_usercredential (id), state varchar(100) NOT NULL, external_id "
    "int NULL UNIQUE)",
]
#: Other Credentials tables a real database has (the import must leave them alone).
CONTENT_TYPES = [("sites", "site"), ("credentials", "coursecertificate"),
                 ("credentials", "programcertificate"), ("badges", "credlybadgetemplate"),
                 ("badges", "accrediblegroup")]


def _sqlite_ddl(statement: str) -> str:
    return (statement.replace("id int NOT NULL AUTO_INCREMENT PRIMARY KEY",
                              "id integer NOT NULL PRIMARY KEY AUTOINCREMENT")
            .replace("datetime(6)", "datetime").replace("longtext", "text"))


def hex_uuid(value: str) -> str:
    return uuid.UUID(value).hex


class CredentialsDB:
    """Rows in Credentials' shape; methods return the new row's id."""

    def __init__(self, connection: Any, dialect: str, url: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.url = url
        self._times = (datetime(2025, 3, 1, 10, 0, n % 60, n) for n in itertools.count(1))

    def _insert(self, table: str, **values: Any) -> int:
        mark = "?" if self.dialect == "sqlite" else "%s"
        columns = ", ".join(values)
        cursor = self.connection.cursor()
        cursor.execute(f"INSERT INTO {table} ({columns}) VALUES "
                       f"({', '.join([mark] * len(values))})", list(values.values()))
        new = cursor.lastrowid
        cursor.close()
        self.connection.commit()
        return int(values.get("id") or values.get("badgetemplate_ptr_id")
                   or values.get("usercredential_ptr_id") or new)

    def now(self) -> Any:
        moment = next(self._times)
        return moment.isoformat(" ") if self.dialect == "sqlite" else moment

    def execute(self, sql: str) -> None:
        cursor = self.connection.cursor()
        cursor.execute(sql)
        cursor.close()
        self.connection.commit()

    def scalar(self, sql: str) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(sql)
        row = cursor.fetchone()
        cursor.close()
        return row[0]

    def checksum(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Every row of every table: the source must be the same after a migration."""
        out = []
        for statement in DDL:
            table = statement.split()[2]
            cursor = self.connection.cursor()
            cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
            out.append((table, [tuple(r) for r in cursor.fetchall()]))
            cursor.close()
        self.connection.commit()
        return out

    # -- the Credentials objects -------------------------------------------------------------
    def create_schema(self) -> None:
        for statement in DDL:
            self.execute(_sqlite_ddl(statement) if self.dialect == "sqlite" else statement)
        for app, model in CONTENT_TYPES:
            self._insert("django_content_type", app_label=app, model=model)

    def content_type(self, model: str) -> int:
        return int(self.scalar(f"SELECT id FROM django_content_type WHERE model = '{model}'"))

    def site(self, domain: str = "credentials.example.org") -> int:
        return self._insert("django_site", domain=domain, name=domain)

    def user(self, username: str, *, email: str | None = None, first: str = "", last: str = "",
             full: str | None = None, lms_id: int | None = None, active: bool = True) -> int:
        return self._insert(
            "core_user", password="!", is_superuser=False, username=username,
            first_name=first, last_name=last, email=email or f"{username}@example.org",
            is_staff=False, is_active=active, date_joined=self.now(), full_name=full,
            lms_user_id=lms_id)

    def organization(self, org_uuid: str, name: str | None, api_key: str) -> int:
        now = self.now()
        return self._insert("badges_credlyorganization", created=now, modified=now,
                            uuid=hex_uuid(org_uuid), api_key=api_key, name=name)

    def _template(self, site: int, name: str, *, active: bool, origin: str, state: str | None,
                  template_uuid: str | None = None, template_id: int | None = None,
                  description: str = "") -> int:
        now = self.now()
        values: dict[str, Any] = {}
        if template_id is not None:
            values["id"] = template_id
        return self._insert("badges_badgetemplate", **values, created=now, modified=now,
                            is_active=active, uuid=hex_uuid(template_uuid or str(uuid.uuid4())),
                            name=name, description=description,
                            icon=f"https://images.example.org/{name.replace(' ', '-')}.png",
                            origin=origin, state=state, site_id=site)

    def credly_template(self, site: int, org: int, template_uuid: str, name: str, *,
                        active: bool = True, state: str = "active") -> int:
        tid = self._template(site, name, active=active, origin="credly", state=state,
                             template_uuid=template_uuid, description=f"{name} (Credly)")
        return self._insert("badges_credlybadgetemplate", badgetemplate_ptr_id=tid,
                            organization_id=org)

    def accredible_config(self, name: str | None, api_key: str) -> int:
        now = self.now()
        return self._insert("badges_accredibleapiconfig", created=now, modified=now,
                            name=name, api_key=api_key)

    def accredible_group(self, site: int, config: int, group_id: int, name: str, *,
                         active: bool = True) -> int:
        """An Accredible group: its id is the provider's group id (as Credentials syncs)."""
        tid = self._template(site, name, active=active, origin="accredible", state="active",
                             template_id=group_id, description=f"{name} (Accredible)")
        return self._insert("badges_accrediblegroup", badgetemplate_ptr_id=tid,
                            api_config_id=config)

    def requirement(self, template: int, blend: str | None, *, event_type: str = COURSE_PASSING,
                    description: str = "") -> int:
        return self._insert("badges_badgerequirement", event_type=event_type,
                            description=description, blend=blend, template_id=template)

    def rule(self, requirement: int, path: str, value: str, operator: str = "eq") -> int:
        return self._insert("badges_datarule", data_path=path, operator=operator, value=value,
                            requirement_id=requirement)

    def penalty(self, template: int, requirements: list[int], *,
                event_type: str = COURSE_PASSING) -> int:
        pid = self._insert("badges_badgepenalty", event_type=event_type, template_id=template)
        for req in requirements:
            self._insert("badges_badgepenalty_requirements", badgepenalty_id=pid,
                         badgerequirement_id=req)
        return pid

    def penalty_rule(self, penalty: int, path: str, value: str, operator: str = "eq") -> int:
        return self._insert("badges_penaltydatarule", data_path=path, operator=operator,
                            value=value, penalty_id=penalty)

    def progress(self, username: str, template: int | None,
                 fulfilled: list[tuple[int, str | None]] = ()) -> int:
        pid = self._insert("badges_badgeprogress", username=username, template_id=template)
        for requirement, blend in fulfilled:
            self._insert("badges_fulfillment", blend=blend, progress_id=pid,
                         requirement_id=requirement)
        return pid

    def _credential(self, username: str, template: int, model: str, status: str) -> tuple[int,
                                                                                         str]:
        now = self.now()
        badge_uuid = str(uuid.uuid4())
        cid = self._insert("credentials_usercredential", created=now, modified=now,
                           credential_id=template, username=username, status=status,
                           uuid=hex_uuid(badge_uuid),
                           credential_content_type_id=self.content_type(model))
        return cid, badge_uuid

    def credly_badge(self, username: str, template: int, *, status: str = "awarded",
                     state: str = "accepted", external: str | None = None) -> str:
        cid, badge_uuid = self._credential(username, template, "credlybadgetemplate", status)
        self._insert("badges_credlybadge", usercredential_ptr_id=cid, state=state,
                     external_uuid=hex_uuid(external) if external else None)
        return badge_uuid

    def accredible_badge(self, username: str, group: int, *, status: str = "awarded",
                         state: str = "accepted", external: int | None = None) -> str:
        cid, badge_uuid = self._credential(username, group, "accrediblegroup", status)
        self._insert("badges_accrediblebadge", usercredential_ptr_id=cid, state=state,
                     external_id=external)
        return badge_uuid


@contextmanager
def sqlite_credentials(path: Path) -> Iterator[CredentialsDB]:
    connection = sqlite3.connect(path)
    built = CredentialsDB(connection, "sqlite", f"sqlite:///{path}")
    built.create_schema()
    try:
        yield built
    finally:
        connection.close()


@contextmanager
def mysql_credentials(name: str) -> Iterator[CredentialsDB]:
    import pymysql

    admin = pymysql.connect(**MYSQL_ADMIN, autocommit=True)
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    connection = pymysql.connect(**MYSQL_ADMIN, database=name, charset="utf8mb4")
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")
    built = CredentialsDB(connection, "mysql", f"mysql://root@127.0.0.1:3306/{name}")
    built.create_schema()
    try:
        yield built
    finally:
        connection.close()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()
