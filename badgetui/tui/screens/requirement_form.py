"""Add or edit a requirement: event type, group letter, description and data rules."""

from __future__ import annotations

import string
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker

from badgetui.domain.config import RequirementConfig
from badgetui.services.common import ServiceError
from badgetui.services.editor import TemplateDetail
from badgetui.tui.screens.form_parts import (
    RulesEditor,
    event_options,
    problems_of,
    report_worker_error,
)

ACTIVE_WARNING = "Active template: saving changes how the next events are evaluated."


class FormRefused(Message):
    def __init__(self, problems: list[str]) -> None:
        super().__init__()
        self.problems = problems


class FormSaved(Message):
    pass


class EditForm(ModalScreen[bool]):
    """Shared behaviour of the requirement and penalty forms: save in a worker, show refusals."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
        Binding("ctrl+s", "save", "Save", id="form.save"),
    ]

    def __init__(self, detail: TemplateDetail) -> None:
        super().__init__()
        self.detail = detail

    @property
    def services(self) -> Any:
        return self.app.services  # type: ignore[attr-defined]

    @property
    def label(self) -> str:
        return f"{self.detail.provider}:{self.detail.external_id}"

    def compose_banner(self) -> ComposeResult:
        if self.detail.active:
            yield Static(Text(ACTIVE_WARNING), classes="banner -warning")

    def compose_buttons(self) -> ComposeResult:
        yield Static("", id="form-error", classes="error")
        with Horizontal(classes="buttons"):
            yield Button("Save", id="save", variant="primary", compact=True)
            yield Button("Cancel", id="cancel", compact=True)

    def key_paths(self, event_type: str) -> list[tuple[str, str]]:
        """The key paths the rule editor offers (no database: the event schemas)."""
        return self.services.editor.key_paths(event_type, self.services.settings.ignored_paths)

    @on(Select.Changed, "#event-type")
    def _event_type(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one(RulesEditor).set_paths(self.key_paths(event.value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        problems = self.problems()
        if problems:
            self.show_problems(problems)
            return
        self.query_one("#form-error", Static).update("saving...")
        self.save(**self.values())

    def problems(self) -> list[str]:
        """What can be told before asking the service (which checks everything again)."""
        return self.query_one(RulesEditor).problems()

    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    def store(self, **values: Any) -> None:
        """Call the service (in the worker thread); raises ServiceError when refused."""
        raise NotImplementedError

    @work(thread=True, exclusive=True, group="form", exit_on_error=False, name="save")
    def save(self, **values: Any) -> None:
        try:
            self.store(**values)
        except ServiceError as exc:
            self.post_message(FormRefused(problems_of(exc, self.label)))
            return
        self.post_message(FormSaved())

    @on(FormRefused)
    def _refused(self, message: FormRefused) -> None:
        self.show_problems(message.problems)

    def show_problems(self, problems: list[str]) -> None:
        self.query_one("#form-error", Static).update(
            Text("\n".join(["Not saved:", *problems])))

    @on(FormSaved)
    def _saved(self) -> None:
        self.dismiss(True)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)


class RequirementForm(EditForm):
    """A requirement of one template; `key` None adds a new one."""

    def __init__(self, detail: TemplateDetail, key: str | None) -> None:
        super().__init__(detail)
        self.key = key
        self.requirement: RequirementConfig | None = next(
            (r for r in detail.config.requirements if r.id == key), None)

    def compose(self) -> ComposeResult:
        req = self.requirement
        events = self.services.settings.events
        event_type = req.event_type if req else events[0]
        title = (f"Edit requirement {req.id!r}" if req else "Add a requirement") + \
            f" of {self.detail.name}"
        with Vertical(classes="dialog form requirement-form"):
            yield Label(Text(title), classes="title")
            yield from self.compose_banner()
            with VerticalScroll(classes="form-body"):
                with Horizontal(classes="field"):
                    yield Label("Event type", classes="field-label")
                    yield Select(event_options(events, event_type), value=event_type,
                                 allow_blank=False, compact=True, id="event-type")
                with Horizontal(classes="field"):
                    yield Label("Key", classes="field-label")
                    yield Input(req.id if req else "", placeholder="automatic (r1, r2, ...)",
                                compact=True, id="key")
                    yield Label("Group", classes="field-label short")
                    yield Select([(g, g) for g in string.ascii_uppercase],
                                 value=req.group if req and req.group else Select.NULL,
                                 prompt="next free", compact=True, id="group")
                with Horizontal(classes="field"):
                    yield Label("Description", classes="field-label")
                    yield Input(req.description if req else "", placeholder="optional",
                                compact=True, id="description")
                yield RulesEditor([(r.path, r.op, r.value) for r in req.rules] if req else [],
                                  self.key_paths(event_type), id="rules")
            yield from self.compose_buttons()

    def values(self) -> dict[str, Any]:
        event_type = self.query_one("#event-type", Select).value
        group = self.query_one("#group", Select).value
        typed = self.query_one("#key", Input).value.strip()
        return {
            "event_type": event_type,
            "group": group if isinstance(group, str) else None,
            "description": self.query_one("#description", Input).value.strip(),
            "rules": self.query_one(RulesEditor).rules(),
            "new_key": typed if typed and typed != self.key else None,
        }

    def store(self, **values: Any) -> None:
        self.services.editor.save_requirement(self.detail.id, self.key, **values)
