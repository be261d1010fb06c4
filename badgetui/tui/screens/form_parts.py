"""Pieces the template editor's screens share: the rules editor, a confirmation dialog, the
error route for workers started by a screen, and small text helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich import errors
from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from badgetui.domain.events import (
    BADGE_AWARDED,
    BADGE_REVOKED,
    CCX_COURSE_PASSING,
    COURSE_PASSING,
)
from badgetui.domain.rules import BOOLEAN_WORDS
from badgetui.services.common import ServiceError
from badgetui.services.config_io import ConfigImportError
from badgetui.tui.errors import one_line

#: The rule editor's operators (config version 2 adds all but eq and ne).
OPERATORS = (("eq", "eq"), ("ne", "ne"), ("gt", "gt"), ("ge", "ge"), ("lt", "lt"), ("le", "le"),
             ("in", "in"), ("not_in", "not_in"), ("exists", "exists"))
EVENT_PREFIX = "org.openedx.learning."
EVENT_LABELS = {
    COURSE_PASSING: "course passing", CCX_COURSE_PASSING: "CCX course passing",
    BADGE_AWARDED: "badge awarded", BADGE_REVOKED: "badge revoked",
}


def short_event(event_type: str) -> str:
    """An event type as narrow columns show it: a name for the known ones."""
    return EVENT_LABELS.get(event_type) or event_type.removeprefix(EVENT_PREFIX)


def event_options(events: Iterable[str], current: str | None = None) -> list[tuple[str, str]]:
    """The event types a form offers: the configured ones, plus the current one if it is not."""
    values = list(dict.fromkeys(events))
    if current and current not in values:
        values.append(current)
    return [(e.removeprefix(EVENT_PREFIX), e) for e in values]


def problems_of(exc: ServiceError, label: str = "") -> list[str]:
    """Every reason a service gave for refusing a change, one per line (without `label: `)."""
    lines = exc.problems if isinstance(exc, ConfigImportError) else [str(exc)]
    prefix = f"{label}: "
    return [line.removeprefix(prefix) if label else line for line in lines]


def theme_color(node: DOMNode, name: str) -> str:
    """A theme colour as a Rich style, for table cells (which do not read .tcss variables).

    Variables that are not plain colours (`$text-muted` is "auto 60%") become `dim`."""
    value = node.app.theme_variables.get(name, "")
    try:
        Style.parse(value)
    except errors.StyleSyntaxError:
        return "dim"
    return value or "dim"


def text(value: Any) -> Text:
    """A table cell shown verbatim: names with brackets are not markup."""
    return Text("" if value is None else str(value), no_wrap=True, overflow="ellipsis")


def report_worker_error(node: DOMNode, event: Worker.StateChanged) -> None:
    """The one error route: a failed worker becomes a notification, never a traceback."""
    if event.state is WorkerState.ERROR:
        node.notify(one_line(event.worker.error), title=event.worker.name or "error",
                    severity="error")


class RuleRow(Horizontal):
    """One data rule: key path (with suggestions), operator, value, remove."""

    def __init__(self, path: str = "", op: str = "eq", value: str = "",
                 paths: dict[str, str] | None = None) -> None:
        super().__init__(classes="rule-row")
        self._initial = (path, op if op in dict(OPERATORS) else "eq", value)
        self.paths = paths or {}

    def compose(self) -> ComposeResult:
        path, op, value = self._initial
        yield Input(path, placeholder="key path", compact=True, classes="rule-path",
                    suggester=SuggestFromList(self.paths, case_sensitive=False))
        yield Select(OPERATORS, value=op, allow_blank=False, compact=True, classes="rule-op")
        yield Input(value, placeholder="value", compact=True, classes="rule-value")
        yield Button("del", compact=True, classes="rule-remove", tooltip="Remove this rule")

    def on_mount(self) -> None:
        self.check()

    @property
    def rule(self) -> tuple[str, str, str]:
        op = self.query_one(".rule-op", Select).value
        return (self.query_one(".rule-path", Input).value.strip(),
                op if isinstance(op, str) else "eq",
                self.query_one(".rule-value", Input).value.strip())

    @property
    def empty(self) -> bool:
        path, _, value = self.rule
        return not path and not value

    def set_paths(self, paths: dict[str, str]) -> None:
        self.paths = paths
        self.query_one(".rule-path", Input).suggester = SuggestFromList(
            paths, case_sensitive=False)
        self.check()

    def problem(self) -> str | None:
        """What is wrong with this rule as typed (the service checks again on save)."""
        path, _, value = self.rule
        if self.empty:
            return None
        if not path:
            return f"a rule compares {value!r} but has no key path"
        if self.paths and path not in self.paths:
            return f"{path!r} is not a key path of this event type"
        if self.paths.get(path) == "bool" and value not in BOOLEAN_WORDS:
            return f"{path} is a boolean: use true or false, not {value!r}"
        return None

    def check(self) -> None:
        """Mark the value as invalid while a boolean path has a non-boolean value."""
        path, _, value = self.rule
        kind = self.paths.get(path)
        value_input = self.query_one(".rule-value", Input)
        value_input.placeholder = "true / false" if kind == "bool" else "value"
        value_input.set_class(kind == "bool" and bool(value) and value not in BOOLEAN_WORDS,
                              "-invalid")

    @on(Input.Changed)
    def _changed(self) -> None:
        self.check()

    @on(Button.Pressed, ".rule-remove")
    def _remove(self, event: Button.Pressed) -> None:
        event.stop()
        self.remove()


class RulesEditor(Vertical):
    """The data rules of a requirement or penalty; all must match (none: every event)."""

    def __init__(self, rules: Sequence[tuple[str, str, str]] = (),
                 paths: Sequence[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("rules-editor")
        self._rules = list(rules)
        self.paths = dict(paths)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="rules-head"):
            yield Label("Rules [dim]all must match (none: every event)[/]",
                        classes="field-label")
            yield Button("Add rule", id="add-rule", compact=True)
        for path, op, value in self._rules:
            yield RuleRow(path, op, value, self.paths)
        yield Static("", classes="paths-hint")

    def on_mount(self) -> None:
        self._show_paths()

    def _show_paths(self) -> None:
        hint = ", ".join(f"{p} ({t})" for p, t in self.paths.items())
        self.query_one(".paths-hint", Static).update(
            Text(f"key paths: {hint}" if hint else "no known key paths for this event type"))

    @property
    def rows(self) -> list[RuleRow]:
        return list(self.query(RuleRow))

    def rules(self) -> list[tuple[str, str, str]]:
        return [row.rule for row in self.rows if not row.empty]

    def problems(self) -> list[str]:
        return [p for p in (row.problem() for row in self.rows) if p]

    def set_paths(self, paths: Sequence[tuple[str, str]]) -> None:
        self.paths = dict(paths)
        for row in self.rows:
            row.set_paths(self.paths)
        self._show_paths()

    async def add_rule(self, path: str = "", op: str = "eq", value: str = "") -> RuleRow:
        row = RuleRow(path, op, value, self.paths)
        await self.mount(row, before=self.query_one(".paths-hint"))
        row.query_one(".rule-path", Input).focus()
        return row

    @on(Button.Pressed, "#add-rule")
    async def _add(self, event: Button.Pressed) -> None:
        event.stop()
        await self.add_rule()


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, for deletions."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(Text(self.question), classes="title")
            with Horizontal(classes="buttons"):
                yield Button("Delete", id="yes", variant="error")
                yield Button("Cancel", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
