"""Badge configuration as code (formats.md): the file's models and its canonical JSON form."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from badgetui.domain.rules import TEXT_OPERATORS, canonical_op


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleConfig(_Strict):
    path: str = Field(min_length=1)
    op: str = "eq"
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # A JSON boolean or number in a rule means its text; booleans use the canonical words.
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value

    @field_validator("op")
    @classmethod
    def _op(cls, value: str) -> str:
        return canonical_op(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip()
        if not value or any(not part for part in value.split(".")):
            raise ValueError(f"bad key path {value!r}")
        return value


class RequirementConfig(_Strict):
    id: str = Field(min_length=1)
    event_type: str = Field(min_length=1)
    group: str | None = None
    description: str = ""
    rules: list[RuleConfig] = []

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if len(value) != 1 or not ("A" <= value <= "Z"):
            raise ValueError(f"group must be one letter A..Z, got {value!r}")
        return value


class PenaltyConfig(_Strict):
    event_type: str = Field(min_length=1)
    requirements: list[str] = Field(min_length=1)
    description: str = ""
    rules: list[RuleConfig] = []


class TemplateConfig(_Strict):
    provider: Literal["credly", "accredible"]
    external_id: str = Field(min_length=1)
    account: str | None = None
    active: bool = False
    requirements: list[RequirementConfig] = []
    penalties: list[PenaltyConfig] = []

    @field_validator("external_id", mode="before")
    @classmethod
    def _external_id(cls, value: Any) -> Any:
        # Accredible group ids are integers at the provider; the file carries them as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def label(self) -> str:
        account = f" ({self.account})" if self.account else ""
        return f"{self.provider}:{self.external_id}{account}"


class BadgeConfig(_Strict):
    """Version 1 is Open edX Credentials' rules (eq, ne); version 2 adds the typed operators
    and reads every version 1 file unchanged. Export writes 1 while no rule needs 2."""

    version: Literal[1, 2] = 1
    templates: list[TemplateConfig] = []

    @model_validator(mode="after")
    def _operators_need_version_2(self) -> BadgeConfig:
        if self.version == 1 and "version" in self.model_fields_set:  # a file's own 1
            for index, tpl in enumerate(self.templates):
                for rule in _rules_of(tpl):
                    if rule.op not in TEXT_OPERATORS:
                        raise ValueError(
                            f"templates[{index}] {tpl.label}: operator {rule.op!r} needs "
                            '"version": 2 (version 1 has eq and ne only)')
        return self

    def needed_version(self) -> int:
        typed = any(r.op not in TEXT_OPERATORS for t in self.templates for r in _rules_of(t))
        return 2 if typed else 1


def _rules_of(tpl: TemplateConfig) -> list[RuleConfig]:
    return [r for q in tpl.requirements for r in q.rules] + [
        r for p in tpl.penalties for r in p.rules]


def dump_config(config: BadgeConfig) -> str:
    """The canonical text of a configuration: what export writes, byte for byte."""
    templates = []
    for tpl in config.templates:
        item: dict[str, Any] = {"provider": tpl.provider, "external_id": tpl.external_id}
        if tpl.account is not None:
            item["account"] = tpl.account
        item["active"] = tpl.active
        item["requirements"] = [
            {
                "id": req.id,
                "event_type": req.event_type,
                "group": req.group,
                "description": req.description,
                "rules": [r.model_dump() for r in req.rules],
            }
            for req in tpl.requirements
        ]
        item["penalties"] = [
            {
                "event_type": pen.event_type,
                "requirements": list(pen.requirements),
                "description": pen.description,
                "rules": [r.model_dump() for r in pen.rules],
            }
            for pen in tpl.penalties
        ]
        templates.append(item)
    doc = {"version": max(config.version, config.needed_version()), "templates": templates}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
