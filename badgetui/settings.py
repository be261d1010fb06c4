"""Settings: a TOML file (`BADGETUI_CONFIG`, else the user's config dir) and `BADGETUI_*`
environment variables, which win. Paths are computed when settings load, never at import."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from badgetui.domain.events import DEFAULT_EVENTS

CREDLY_PRODUCTION = "https://api.credly.com/v1/"
CREDLY_SANDBOX = "https://sandbox-api.credly.com/v1/"
ACCREDIBLE_PRODUCTION = "https://api.accredible.com/v1/"
ACCREDIBLE_SANDBOX = "https://sandbox.api.accredible.com/v1/"
#: Accredible's regions (its Moodle and LearnDash plugins switch between these two).
ACCREDIBLE_REGIONS = {"us": ACCREDIBLE_PRODUCTION, "eu": "https://eu.api.accredible.com/v1/"}

#: Credentials' and devstack's default prefix `dev` (openedx-events.md §7).
DEFAULT_BUS_STREAM = "dev-learning-badges-lifecycle"

#: Payload paths hidden from the rule editor's suggestions by default (noise, not criteria).
DEFAULT_IGNORED_PATHS = (
    "user.id",
    "user.is_active",
    "user.pii.name",
    "course.display_name",
    "course.start",
    "course.end",
    "course.coach_email",
    "course.max_students_allowed",
)


def config_path() -> Path:
    """Where the settings file lives: `BADGETUI_CONFIG` or the user's config directory."""
    override = os.environ.get("BADGETUI_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("badgetui")) / "config.toml"


def default_database() -> str:
    return str(Path(platformdirs.user_data_dir("badgetui")) / "badgetui.db")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Everything badgetui reads from the environment or the settings file."""

    model_config = SettingsConfigDict(env_prefix="BADGETUI_", extra="ignore")

    db: str = Field(default_factory=default_database, description="database path or URL")
    use_sandbox: bool = Field(False, description="talk to the providers' sandboxes")
    credly_api_url: str | None = Field(None, description="Credly API base URL")
    accredible_api_url: str | None = Field(None, description="Accredible API base URL")
    credly_oauth_url: str | None = Field(
        None, description="Credly OAuth token URL (default: derived from each account's API base)"
    )
    events: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_EVENTS, description="event types that take part (comma-separated)"
    )
    ignored_paths: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_IGNORED_PATHS, description="key paths the rule editor does not offer"
    )
    reaward_after_revoke: bool = Field(
        True, description="a revoked badge can be earned again (false: never re-award)"
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="events per intake transaction")
    provider_timeout: float = Field(10.0, gt=0, description="seconds before a provider call fails")
    delivery_concurrency: int = Field(
        16, ge=1, le=100, description="provider calls in flight per account"
    )
    delivery_base_delay: float = Field(1.0, gt=0, description="first retry delay, seconds")
    delivery_max_delay: float = Field(60.0, gt=0, description="longest retry delay, seconds")
    delivery_max_wait: float = Field(
        120.0, gt=0, description="deliver stops when the next retry is further away than this"
    )
    delivery_stall: float = Field(
        120.0, gt=0, description="deliver stops after this long without any job finishing"
    )
    delivery_lease: float = Field(
        120.0, gt=0, description="seconds a running job is held before another worker retakes it"
    )
    # -- the Open edX event bus (Redis Streams, openedx-events.md §7) -----------------------
    redis_url: str | None = Field(None, description="event bus Redis URL (--redis overrides)")
    bus_stream: str = Field(
        DEFAULT_BUS_STREAM, min_length=1,
        description="stream name: <EVENT_BUS_TOPIC_PREFIX>-learning-badges-lifecycle",
    )
    bus_group: str = Field("badgetui", min_length=1, description="badgetui's consumer group")
    bus_consumer: str | None = Field(
        None, description="consumer name, unique per process and stable (default: host name)"
    )
    bus_start: str = Field(
        "$", min_length=1,
        description="where a brand-new group starts: $ (new entries), 0 (all retained) or an id",
    )
    bus_claim_timeout: float = Field(
        60.0, gt=0, description="seconds before an idle entry of another consumer is taken over"
    )
    bus_max_attempts: int = Field(
        3, ge=1, description="processing attempts of an entry before it goes to the DLQ"
    )
    bus_dlq_stream: str | None = Field(
        None, description="dead-letter stream (default: <stream>-badgetui-dlq)"
    )
    bus_batch: int = Field(500, ge=1, le=10_000, description="entries read (and acked) at once")
    bus_block: float = Field(
        1.0, gt=0, le=30, description="seconds a read waits for new entries (stop latency)"
    )
    bus_retry_delay: float = Field(
        1.0, gt=0, description="first delay before a failed entry is retried (doubles)"
    )
    bus_maxlen: int = Field(
        10_000, ge=1, description="MAXLEN ~ of published entries; lag warnings are relative to it"
    )

    @field_validator("events", "ignored_paths", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split(value)

    @property
    def credly_url(self) -> str:
        return self.credly_api_url or (CREDLY_SANDBOX if self.use_sandbox else CREDLY_PRODUCTION)

    @property
    def accredible_url(self) -> str:
        if self.accredible_api_url:
            return self.accredible_api_url
        return ACCREDIBLE_SANDBOX if self.use_sandbox else ACCREDIBLE_PRODUCTION

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
