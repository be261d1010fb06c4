"""Settings come from a TOML file and BADGETUI_* variables, which win."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from badgetui.domain.events import CCX_COURSE_PASSING, COURSE_PASSING
from badgetui.settings import (
    ACCREDIBLE_SANDBOX,
    CREDLY_PRODUCTION,
    CREDLY_SANDBOX,
    config_path,
    load_settings,
)


def test_defaults_point_at_user_dirs_and_production(tmp_path):
    settings = load_settings()
    assert settings.events == (COURSE_PASSING, CCX_COURSE_PASSING)
    assert settings.db.startswith(str(tmp_path / "xdg-data"))
    assert settings.credly_url == CREDLY_PRODUCTION
    assert settings.reaward_after_revoke is True


def test_toml_file_then_environment_wins(tmp_path, monkeypatch):
    path = tmp_path / "badgetui.toml"
    path.write_text(
        'db = "/srv/badges.db"\nuse_sandbox = true\nevents = ["a.v1", "b.v1"]\n'
        'reaward_after_revoke = false\nignored_paths = ["user.id"]\n'
    )
    monkeypatch.setenv("BADGETUI_CONFIG", str(path))
    assert config_path() == path
    settings = load_settings()
    assert settings.db == "/srv/badges.db"
    assert settings.events == ("a.v1", "b.v1")
    assert settings.reaward_after_revoke is False
    assert settings.ignored_paths == ("user.id",)
    assert settings.credly_url == CREDLY_SANDBOX
    assert settings.accredible_url == ACCREDIBLE_SANDBOX

    monkeypatch.setenv("BADGETUI_DB", "postgresql://badges@127.0.0.1/test")
    monkeypatch.setenv("BADGETUI_EVENTS", f" {COURSE_PASSING} ,{CCX_COURSE_PASSING},")
    monkeypatch.setenv("BADGETUI_CREDLY_API_URL", "http://127.0.0.1:9/credly/v1/")
    monkeypatch.setenv("BADGETUI_REAWARD_AFTER_REVOKE", "true")
    settings = load_settings()
    assert settings.db == "postgresql://badges@127.0.0.1/test"
    assert settings.events == (COURSE_PASSING, CCX_COURSE_PASSING)
    assert settings.credly_url == "http://127.0.0.1:9/credly/v1/"
    assert settings.reaward_after_revoke is True


def test_bad_value_is_a_validation_error(monkeypatch):
    monkeypatch.setenv("BADGETUI_BATCH_SIZE", "zero")
    with pytest.raises(ValidationError):
        load_settings()
