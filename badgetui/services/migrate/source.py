"""The Open edX Credentials database, opened read-only: MySQL (production) or SQLite (tests).

Why plain DB-API and not Peewee: the source is somebody else's schema, read with a handful of
SELECTs inside one read-only transaction (a consistent snapshot on MySQL), and never written.
PyMySQL is an optional extra (`pip install 'badgetui[mysql]'`); without it a MySQL URL says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from badgetui.services.common import ServiceError

#: The tables a Credentials database with the badges app has (migrations badges 0001 + 0002).
REQUIRED_TABLES = (
    "badges_badgetemplate", "badges_credlybadgetemplate", "badges_credlyorganization",
    "badges_badgerequirement", "badges_datarule", "badges_badgepenalty",
    "badges_badgepenalty_requirements", "badges_penaltydatarule", "badges_badgeprogress",
    "badges_fulfillment", "badges_credlybadge", "credentials_usercredential",
    "django_content_type", "core_user",
)
#: Rows fetched from the source at a time.
FETCH = 5000
#: Added by badges 0002 (Accredible, 2025); older Credentials databases have none of them.
ACCREDIBLE_TABLES = ("badges_accredibleapiconfig", "badges_accrediblegroup",
                     "badges_accrediblebadge")


def source_label(url: str) -> str:
    """The URL as it may be shown: the password masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "")
    return parts._replace(netloc=f"{user}:****@{netloc[1]}").geturl()


@dataclass(slots=True)
class Source:
    """A read-only connection; `rows` returns dicts keyed by column name."""

    url: str
    connection: Any
    dialect: str  # "mysql" or "sqlite"
    _streaming: Any = None  # PyMySQL's unbuffered cursor class

    @property
    def label(self) -> str:
        return source_label(self.url)

    def rows(self, sql: str) -> Iterator[dict[str, Any]]:
        """Streamed (a server-side cursor on MySQL): a large site's fulfillments are never
        all in memory as rows at once. Each query is read to its end before the next."""
        cursor = self.connection.cursor(self._streaming) if self._streaming else \
            self.connection.cursor()
        try:
            cursor.execute(sql)
            names = [d[0] for d in cursor.description]
            while batch := cursor.fetchmany(FETCH):
                for row in batch:
                    yield dict(zip(names, row, strict=True))
        finally:
            cursor.close()

    def tables(self) -> set[str]:
        if self.dialect == "sqlite":
            found = self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
            return {r["name"] for r in found}
        return {_name(next(iter(r.values()))) for r in self.rows("SHOW TABLES")}

    def close(self) -> None:
        try:
            if self.dialect == "mysql":
                self.connection.rollback()  # the read-only transaction: nothing to keep
            self.connection.close()
        except Exception:
            pass


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _sqlite(url: str) -> Source:
    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    if not path:
        raise ServiceError(f"{url}: no database file (use sqlite:///path/to/db.sqlite3)")
    file = Path(unquote(path)).expanduser()
    if not file.is_file():
        raise ServiceError(f"cannot open {url}: no such file")
    try:
        connection = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True,
                                     check_same_thread=False)
        connection.execute("PRAGMA query_only = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ServiceError(f"cannot open {url}: {exc}") from None
    return Source(url, connection, "sqlite")


def _mysql(url: str) -> Source:
    try:
        import pymysql
    except ImportError:
        raise ServiceError("reading a MySQL database needs PyMySQL: "
                           "pip install 'badgetui[mysql]'") from None
    parts = urlsplit(url)
    database = parts.path.lstrip("/")
    if not database:
        raise ServiceError(f"{source_label(url)}: no database name (mysql://user:pass@host/db)")
    options = dict(parse_qsl(parts.query))
    try:
        connection = pymysql.connect(
            host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
            user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
            database=unquote(database), charset=options.get("charset", "utf8mb4"),
            connect_timeout=10, read_timeout=600, autocommit=False,
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    except pymysql.MySQLError as exc:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        raise ServiceError(f"cannot read {source_label(url)}: {reason}") from None
    return Source(url, connection, "mysql", pymysql.cursors.SSCursor)


def open_source(url: str) -> Source:
    """Connect read-only and check that this is a Credentials database with badges."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        source = _sqlite(url)
    elif scheme in ("mysql", "mysql+pymysql", "mariadb"):
        source = _mysql(url)
    else:
        raise ServiceError(f"unsupported source {source_label(url)!r}: use "
                           "mysql://user:pass@host:3306/credentials or sqlite:///path")
    tables = source.tables()
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        source.close()
        raise ServiceError(f"{source_label(url)} is not an Open edX Credentials database with "
                           f"the badges app (no table {', '.join(missing[:3])})")
    return source


@contextmanager
def opened(url: str) -> Iterator[Source]:
    source = open_source(url)
    try:
        yield source
    finally:
        source.close()


def as_time(value: Any) -> datetime | None:
    """A Django DATETIME (UTC with USE_TZ) as a naive UTC datetime: PyMySQL gives datetimes,
    SQLite gives text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def as_uuid(value: Any) -> str:
    """Django stores UUIDField as 32 hex digits on MySQL and SQLite: the dashed form."""
    text = str(value or "").strip().lower().replace("-", "")
    if len(text) != 32:
        return str(value or "")
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
