"""Shared fixtures: a real database per test, a frozen clock, synced templates.

Every test that asks for a database (`db_url`, `new_database`, `services`, ...) runs on a fresh
SQLite file and, when `BADGETUI_TEST_POSTGRES` names a PostgreSQL server, once more on a fresh
schema there (created for the test, dropped after it; subprocesses get the same URL, its
`?options=-csearch_path%3D...` keeps them in the schema). Tests marked `sqlite_only` check what
only SQLite has (pragmas, WAL); `postgres_only` ones are skipped without a server.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.database import HISTORY_TABLE
from badgetui.store.models import ProviderAccount

CREDLY_ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"

#: Read at import: `_isolated_env` removes every BADGETUI_* variable inside the tests.
POSTGRES_URL = os.environ.get("BADGETUI_TEST_POSTGRES", "").strip()
BACKENDS = ("sqlite", "postgres") if POSTGRES_URL else ("sqlite",)
SCHEMA_PREFIX = "badgetui_t_"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite only (SQLite specifics)")
    config.addinivalue_line("markers", "postgres_only: runs on PostgreSQL only (skipped "
                            "without BADGETUI_TEST_POSTGRES)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With a PostgreSQL server, every database test runs on both backends (ids unchanged
    without one, so snapshot names and `-k` selections stay as they are)."""
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("postgres_only"):
        skip = pytest.mark.skip(reason="needs a PostgreSQL server (BADGETUI_TEST_POSTGRES)")
        metafunc.parametrize("backend", [pytest.param("postgres", marks=[] if POSTGRES_URL
                                                      else [skip])])
        return
    if len(BACKENDS) < 2:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") or (
        "snap_compare" in metafunc.fixturenames  # snapshot files are named by test id
    ):
        return
    metafunc.parametrize("backend", BACKENDS)


@pytest.fixture
def backend() -> str:
    """The database backend of this test ("sqlite" unless parametrized with "postgres")."""
    return "sqlite"


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _admin():  # psycopg2 is an optional dependency: its types are not imported here
    import psycopg2

    conn = psycopg2.connect(POSTGRES_URL)
    conn.autocommit = True
    return conn


_made: set[str] = set()  # schemas this session created and has not dropped yet
_recycled: list[str] = []  # migrated, emptied schemas waiting for the next `recycle` user


def _schema_url(name: str) -> str:
    return _with_query(POSTGRES_URL, options=f"-csearch_path={name}", application_name=name)


def _end_connections(cur: Any, name: str) -> None:
    """End the connections a test left open on a schema (they are named after it), so that
    no lock they hold blocks dropping or emptying it."""
    cur.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND pid <> pg_backend_pid()", (name,)
    )


@contextmanager
def postgres_schema(*, recycle: bool = False) -> Iterator[str]:
    """A URL whose connections work in a new, empty schema, dropped afterwards.

    With `recycle` (hypothesis examples, which want hundreds of fresh databases) the schema is
    emptied instead (every table truncated, ids restarting at 1) and handed to the next
    `recycle` user, which then finds it migrated and empty: the same as a fresh one to the
    code under test, without paying for the migrations each time."""
    admin = _admin()
    try:
        with admin.cursor() as cur:
            if recycle and _recycled:
                name = _recycled.pop()
            else:
                name = f"{SCHEMA_PREFIX}{secrets.token_hex(6)}"
                cur.execute(f'CREATE SCHEMA "{name}"')
                _made.add(name)
        try:
            yield _schema_url(name)
        finally:
            with admin.cursor() as cur:
                _end_connections(cur, name)
                if recycle:
                    _empty(cur, name)
                    _recycled.append(name)
                else:
                    cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
                    _made.discard(name)
    finally:
        admin.close()


def _empty(cur: Any, name: str) -> None:
    """Delete every row and restart every id sequence (far quicker than TRUNCATE for the few
    rows an example writes); foreign-key triggers are off for this one transaction."""
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> %s",
                (name, HISTORY_TABLE))
    tables = [table for (table,) in cur.fetchall()]
    cur.execute("SELECT sequencename FROM pg_sequences WHERE schemaname = %s", (name,))
    sequences = [seq for (seq,) in cur.fetchall()]
    statements = [f'DELETE FROM "{name}"."{table}"' for table in tables]
    statements += [f"SELECT setval('\"{name}\".\"{seq}\"', 1, false)" for seq in sequences]
    cur.execute("BEGIN; SET LOCAL session_replication_role = replica; "
                + "; ".join(statements) + "; COMMIT")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the recycled schemas, and any a crashed teardown left behind."""
    if not _made:
        return
    admin = _admin()
    try:
        with admin.cursor() as cur:
            for name in sorted(_made):
                _end_connections(cur, name)
                cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        _made.clear()
        _recycled.clear()
    finally:
        admin.close()


@contextmanager
def fresh_database(
    backend: str, directory: Path, name: str = "badgetui", *, recycle: bool = False
) -> Iterator[str]:
    """A new empty database of `backend`: a file in `directory`, or a PostgreSQL schema (see
    `postgres_schema` for `recycle`)."""
    if backend == "postgres":
        with postgres_schema(recycle=recycle) as url:
            yield url
    else:
        yield str(directory / f"{name}.db")


@pytest.fixture
def new_database(backend: str, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Factory of further fresh databases of this test's backend, all removed at the end."""
    names: set[str] = set()
    with ExitStack() as stack:

        def make(name: str = "badgetui") -> str:
            assert name not in names, f"database {name} made twice"
            names.add(name)
            return stack.enter_context(fresh_database(backend, tmp_path, name))

        yield make


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer config or data directory leaks into a test."""
    for key in list(os.environ):
        if key.startswith("BADGETUI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BADGETUI_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(new_database: Callable[..., str]) -> str:
    """The test's database: a SQLite file path or a PostgreSQL URL (for Settings(db=...),
    BADGETUI_DB of a subprocess, open_database)."""
    return new_database()


@pytest.fixture
def make_services(db_url: str, clock: FakeClock) -> Iterator[Callable[..., Services]]:
    opened: list[Services] = []

    def factory(**settings: object) -> Services:
        services = Services.open(Settings(db=db_url, **settings), clock=clock)
        opened.append(services)
        return services

    yield factory
    for services in opened:
        services.close()


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()


@pytest.fixture
def synced(services: Services) -> Callable[..., list[str]]:
    """Bring templates in as a Credly sync would; returns their external ids."""

    def sync(*external_ids: str, provider: str = "credly", account: str = CREDLY_ORG) -> list[str]:
        found = ProviderAccount.get_or_none(
            (ProviderAccount.provider == provider) & (ProviderAccount.identifier == account)
        )
        if found is None:
            services.templates.add_account(provider, account, "test-key-1234", name="Example")
            found = ProviderAccount.get(
                (ProviderAccount.provider == provider) & (ProviderAccount.identifier == account)
            )
        existing = [t.external_id for t in found.templates]
        wanted = list(dict.fromkeys([*existing, *external_ids]))
        services.templates.upsert_synced(
            found, [SyncedTemplate(ext, f"Template {ext}") for ext in wanted]
        )
        return list(external_ids)

    return sync


# -- providers: the emulator, in process or over loopback HTTP ---------------------------------
ORG_B = "8a1d2c3b-4e5f-4a6b-9c7d-0e1f2a3b4c5d"


def credly_templates(count: int, prefix: str = "tpl") -> list[dict]:
    return [
        {"id": f"00000000-0000-4000-8000-{n:012d}" if prefix == "tpl" else f"{prefix}-{n}",
         "name": f"Badge {n}", "state": "active", "description": f"Badge number {n}",
         "image_url": f"https://images.example.org/{n}.png"}
        for n in range(1, count + 1)
    ]


def sandbox_seed(templates: int = 5, groups: int = 3) -> dict:
    return {
        "credly": {"organizations": [
            {"id": CREDLY_ORG, "name": "Example Academy", "api_key": "sandbox-credly-key",
             "badge_templates": credly_templates(templates)},
        ]},
        "accredible": {"accounts": [
            {"name": "Example Accredible", "api_key": "sandbox-accredible-key",
             "groups": [{"id": 9000 + n, "name": f"group-{n}", "course_name": f"Group {n}",
                         "course_description": f"Group number {n}",
                         "primary_design_id": 70 + n} for n in range(1, groups + 1)],
             "designs": [{"id": 70 + n, "rasterized_content_url": f"https://img.example.org/{n}"}
                         for n in range(1, groups + 1)]},
            {"name": "Second Accredible", "api_key": "sandbox-accredible-key-2",
             "groups": [{"id": 9001, "name": "shared", "course_name": "Shared id",
                         "course_description": "", "primary_design_id": None}],
             "designs": []},
        ]},
    }


@pytest.fixture
def emulator(clock: FakeClock):
    from badgetui.sandbox import Emulator

    return Emulator(sandbox_seed(), clock=clock, rng_seed=1)


@pytest.fixture
def make_provider_services(db_url: str, clock: FakeClock, emulator):
    """Services talking to the in-process emulator through an httpx ASGI transport."""
    opened: list[Services] = []

    def factory(**settings: object) -> Services:
        values: dict = {"credly_api_url": "http://sandbox/credly/v1/",
                        "accredible_api_url": "http://sandbox/accredible/v1/",
                        "provider_timeout": 2.0, "delivery_base_delay": 0.05,
                        "delivery_max_delay": 0.5}
        values.update(settings)
        services = Services.open(Settings(db=db_url, **values), clock=clock,
                                 transport=emulator.transport())
        opened.append(services)
        return services

    yield factory
    for services in opened:
        services.close()


@pytest.fixture
def psvc(make_provider_services):
    return make_provider_services()


@pytest.fixture
def fast(psvc, clock):
    """Provider services whose delivery backoff waits advance the fake clock instead of sleeping."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    psvc.delivery.sleep = sleep
    return psvc
