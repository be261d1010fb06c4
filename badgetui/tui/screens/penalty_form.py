"""Add or edit a penalty: event type, the requirements of this template it resets, rules."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Select, SelectionList

from badgetui.domain.config import PenaltyConfig
from badgetui.services.editor import TemplateDetail
from badgetui.tui.screens.form_parts import RulesEditor, event_options
from badgetui.tui.screens.requirement_form import EditForm


class PenaltyForm(EditForm):
    """A penalty of one template; `index` None adds a new one. Only this template's
    requirements can be chosen."""

    def __init__(self, detail: TemplateDetail, index: int | None) -> None:
        super().__init__(detail)
        self.index = index
        penalties = detail.config.penalties
        self.penalty: PenaltyConfig | None = (
            penalties[index] if index is not None and 0 <= index < len(penalties) else None)

    def compose(self) -> ComposeResult:
        pen = self.penalty
        events = self.services.settings.events
        event_type = pen.event_type if pen else events[0]
        linked = set(pen.requirements) if pen else set()
        title = (f"Edit penalty {self.index + 1}" if pen and self.index is not None
                 else "Add a penalty") + f" of {self.detail.name}"
        with Vertical(classes="dialog form penalty-form"):
            yield Label(Text(title), classes="title")
            yield from self.compose_banner()
            with VerticalScroll(classes="form-body"):
                with Horizontal(classes="field"):
                    yield Label("Event type", classes="field-label")
                    yield Select(event_options(events, event_type), value=event_type,
                                 allow_blank=False, compact=True, id="event-type")
                with Horizontal(classes="field"):
                    yield Label("Description", classes="field-label")
                    yield Input(pen.description if pen else "", placeholder="optional",
                                compact=True, id="description")
                with Horizontal(classes="field"):
                    yield Label("Resets", classes="field-label")
                    yield SelectionList[str](
                        *[(Text(f"{r.id} (group {r.group})"
                                + (f": {r.description}" if r.description else "")),
                           r.id, r.id in linked)
                          for r in self.detail.config.requirements],
                        id="resets")
                yield RulesEditor([(r.path, r.op, r.value) for r in pen.rules] if pen else [],
                                  self.key_paths(event_type), id="rules")
            yield from self.compose_buttons()

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.query_one("#resets", SelectionList).selected:
            problems.insert(0, "choose at least one requirement for the penalty to reset")
        return problems

    def values(self) -> dict[str, Any]:
        return {
            "event_type": self.query_one("#event-type", Select).value,
            "requirements": [r.id for r in self.detail.config.requirements
                             if r.id in self.query_one("#resets", SelectionList).selected],
            "description": self.query_one("#description", Input).value.strip(),
            "rules": self.query_one(RulesEditor).rules(),
        }

    def store(self, **values: Any) -> None:
        self.services.editor.save_penalty(self.detail.id, self.index, **values)
