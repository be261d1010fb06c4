"""Shared fixtures: a real SQLite file per test, a frozen clock, synced templates."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import ProviderAccount

CREDLY_ORG = "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f"


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
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "badgetui.db"


@pytest.fixture
def make_services(db_path: Path, clock: FakeClock) -> Iterator[Callable[..., Services]]:
    opened: list[Services] = []

    def factory(**settings: object) -> Services:
        services = Services.open(Settings(db=str(db_path), **settings), clock=clock)
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
def make_provider_services(db_path: Path, clock: FakeClock, emulator):
    """Services talking to the in-process emulator through an httpx ASGI transport."""
    opened: list[Services] = []

    def factory(**settings: object) -> Services:
        values: dict = {"credly_api_url": "http://sandbox/credly/v1/",
                        "accredible_api_url": "http://sandbox/accredible/v1/",
                        "provider_timeout": 2.0, "delivery_base_delay": 0.05,
                        "delivery_max_delay": 0.5}
        values.update(settings)
        services = Services.open(Settings(db=str(db_path), **values), clock=clock,
                                 transport=emulator.transport())
        opened.append(services)
        return services

    yield factory
    for services in opened:
        services.close()


@pytest.fixture
def psvc(make_provider_services):
    return make_provider_services()
