"""The template editor: details, dashboard link, requirements, penalties, lint, rule tester."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static
from textual.worker import Worker, get_current_worker

from badgetui.domain.config import RuleConfig
from badgetui.domain.lint import Finding
from badgetui.services.common import ServiceError
from badgetui.services.editor import TemplateDetail
from badgetui.tui.messages import DataChanged
from badgetui.tui.screens.form_parts import (
    ConfirmScreen,
    report_worker_error,
    short_event,
    text,
    theme_color,
)

REQUIREMENT_COLUMNS = (
    ("key", "Key"), ("group", "Group"), ("event", "Event"), ("rules", "Rules"), ("lint", "Lint"),
    ("description", "Description"),
)
PENALTY_COLUMNS = (
    ("number", "#"), ("event", "Event"), ("resets", "Resets"), ("rules", "Rules"),
    ("lint", "Lint"), ("description", "Description"),
)


class DetailLoaded(Message):
    def __init__(self, detail: TemplateDetail) -> None:
        super().__init__()
        self.detail = detail


class Deleted(Message):
    """A deletion finished: `error` is empty when it was saved."""

    def __init__(self, what: str, error: str = "") -> None:
        super().__init__()
        self.what = what
        self.error = error


def rules_text(rules: list[RuleConfig]) -> str:
    if not rules:
        return "(none: every event)"
    return "; ".join(f"{r.path} {r.op} {r.value}" for r in rules)


def findings_for(findings: list[Finding], where: str) -> list[Finding]:
    """The lint findings about one requirement (`requirement 'x'`) or penalty (`penalty 2`)."""
    return [f for f in findings
            if f.message.startswith(f"{where}:") or f.message.startswith(f"{where} ")]


class TemplateScreen(Screen[None]):
    """One template: what it is, where it lives at the provider, and what earns it."""

    BINDINGS = [
        Binding("escape", "close", "Back", id="template.close"),
        Binding("a", "add", "Add", id="template.add"),
        Binding("e", "edit", "Edit", id="template.edit"),
        Binding("d", "delete", "Delete", id="template.delete"),
        Binding("t", "tester", "Rule tester", id="template.tester"),
        Binding("o", "dashboard", "Dashboard", id="template.dashboard"),
    ]

    def __init__(self, template_id: int) -> None:
        super().__init__()
        self.template_id = template_id
        self.detail: TemplateDetail | None = None

    @property
    def services(self) -> Any:
        return self.app.services  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="template-body", classes="reloads"):
            yield Static("loading...", id="template-title")
            yield Static("", id="template-link")
            yield Static("", id="template-banner", classes="banner")
            yield Static("", id="template-lint", classes="lint")
            yield Label("Requirements", classes="section", id="requirements-label")
            yield DataTable(id="requirements", cursor_type="row", zebra_stripes=True)
            yield Label("Penalties", classes="section", id="penalties-label")
            yield DataTable(id="penalties", cursor_type="row", zebra_stripes=True)
            yield Static("", id="template-message", classes="message")
        yield Footer()

    def on_mount(self) -> None:
        for selector, columns in (("#requirements", REQUIREMENT_COLUMNS),
                                  ("#penalties", PENALTY_COLUMNS)):
            table = self.query_one(selector, DataTable)
            for key, label in columns:
                table.add_column(label, key=key)
        self.query_one("#requirements", DataTable).focus()
        self.reload()

    # -- loading -------------------------------------------------------------------------
    def reload(self) -> None:
        self.load(self.template_id)

    @work(thread=True, exclusive=True, group="template", exit_on_error=False, name="template")
    def load(self, template_id: int) -> None:
        detail = self.services.editor.detail(template_id)
        if not get_current_worker().is_cancelled:
            self.post_message(DetailLoaded(detail))

    @on(DataChanged)
    def _changed(self, message: DataChanged) -> None:
        message.stop()
        self.reload()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        report_worker_error(self, event)

    @on(DetailLoaded)
    def _loaded(self, message: DetailLoaded) -> None:
        self.detail = detail = message.detail
        self.sub_title = f"{detail.provider}: {detail.name}"
        title = Text.assemble(
            (detail.name, "bold"),
            f"\n{detail.provider} account {detail.account}, external id {detail.external_id},"
            f" state {detail.state}")
        self.query_one("#template-title", Static).update(title)
        link = Text.assemble(("Dashboard: ", theme_color(self, "text-muted")),
                             (detail.dashboard_url, Style(link=detail.dashboard_url,
                                                          underline=True)))
        self.query_one("#template-link", Static).update(link)
        self._banner(detail)
        self._lint(detail)
        self._fill_requirements(detail)
        self._fill_penalties(detail)
        self.refresh_bindings()

    def _banner(self, detail: TemplateDetail) -> None:
        banner = self.query_one("#template-banner", Static)
        if detail.deleted or detail.stale:
            why = ("deleted at the provider" if detail.deleted
                   else "stale (no longer returned by the provider)")
            line, level = f"This template is {why}; it cannot be activated.", "-warning"
        elif detail.active:
            line, level = ("ACTIVE: changes apply to the next events as soon as they are saved.",
                           "-warning")
        elif detail.activation_problem:
            line, level = f"Inactive; cannot be activated yet: {detail.activation_problem}.", ""
        else:
            line, level = "Inactive; activate it with space in the Templates tab.", ""
        banner.update(Text(line))
        banner.set_class(level == "-warning", "-warning")

    def _lint(self, detail: TemplateDetail) -> None:
        lint = self.query_one("#template-lint", Static)
        if not detail.findings:
            lint.update(Text("lint: no findings", style=theme_color(self, "text-muted")))
            return
        lines = Text()
        for index, finding in enumerate(detail.findings):
            if index:
                lines.append("\n")
            color = theme_color(self, "error" if finding.level == "error" else "warning")
            lines.append(f"{finding.level}: ", style=f"bold {color}")
            lines.append(finding.message)
        lint.update(lines)

    def _lint_cell(self, findings: list[Finding]) -> Text:
        if not findings:
            return Text("")
        level = "error" if any(f.level == "error" for f in findings) else "warning"
        return Text(level, style=f"bold {theme_color(self, level)}")

    def _refill(self, table: DataTable[Any], rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        row = table.cursor_row
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        if rows:
            table.move_cursor(row=min(row, len(rows) - 1), animate=False)

    def _fill_requirements(self, detail: TemplateDetail) -> None:
        rows = [
            (req.id, (text(req.id), text(req.group or ""), text(short_event(req.event_type)),
                      text(rules_text(req.rules)),
                      self._lint_cell(findings_for(detail.findings, f"requirement {req.id!r}")),
                      text(req.description)))
            for req in detail.config.requirements
        ]
        self._refill(self.query_one("#requirements", DataTable), rows)
        self.query_one("#requirements-label", Label).update(
            f"Requirements ({len(rows)}): same group = any one of them, every group needed")

    def _fill_penalties(self, detail: TemplateDetail) -> None:
        rows = [
            (str(index), (text(index + 1), text(short_event(pen.event_type)),
                          text(", ".join(pen.requirements)), text(rules_text(pen.rules)),
                          self._lint_cell(findings_for(detail.findings, f"penalty {index + 1}")),
                          text(pen.description)))
            for index, pen in enumerate(detail.config.penalties)
        ]
        self._refill(self.query_one("#penalties", DataTable), rows)
        self.query_one("#penalties-label", Label).update(
            f"Penalties ({len(rows)}): reset requirements of this template")

    # -- which table the keys act on -----------------------------------------------------
    @property
    def section(self) -> str:
        focused = self.focused
        return "penalties" if focused is not None and focused.id == "penalties" \
            else "requirements"

    def _selected(self) -> str | None:
        table = self.query_one(f"#{self.section}", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return key.value

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("add", "tester", "dashboard"):
            return self.detail is not None or None
        if action in ("edit", "delete"):
            return (self.detail is not None and self._selected() is not None) or None
        return True

    @on(DataTable.RowHighlighted)
    @on(DataTable.RowSelected)
    def _row(self, event: DataTable.RowHighlighted | DataTable.RowSelected) -> None:
        self.refresh_bindings()
        if isinstance(event, DataTable.RowSelected):
            self.action_edit()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------
    def action_close(self) -> None:
        self.dismiss()

    def action_add(self) -> None:
        self._open_form(None)

    def action_edit(self) -> None:
        selected = self._selected()
        if selected is not None:
            self._open_form(selected)

    def _open_form(self, selected: str | None) -> None:
        from badgetui.tui.screens.penalty_form import PenaltyForm
        from badgetui.tui.screens.requirement_form import RequirementForm

        detail = self.detail
        if detail is None:
            return
        if self.section == "penalties":
            if not detail.config.requirements:
                self._say("Add a requirement first: a penalty resets requirements.", "warning")
                return
            index = None if selected is None else int(selected)
            self.app.push_screen(PenaltyForm(detail, index), self._saved)
        else:
            self.app.push_screen(RequirementForm(detail, selected), self._saved)

    def _saved(self, saved: bool | None) -> None:
        if saved:
            self._say("Saved.")
            self.reload()
            self.app.broadcast_change("requirements")  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        selected = self._selected()
        if selected is None or self.detail is None:
            return
        section = self.section
        if section == "penalties":
            question = f"Delete penalty {int(selected) + 1}?"
        else:
            question = (f"Delete requirement {selected!r}? Penalties that reset only this "
                        "requirement are deleted with it.")

        def answered(yes: bool | None) -> None:
            if yes:
                self.delete(section, selected)

        self.app.push_screen(ConfirmScreen(question), answered)

    @work(thread=True, group="template-edit", exit_on_error=False, name="delete")
    def delete(self, section: str, selected: str) -> None:
        editor = self.services.editor
        try:
            if section == "penalties":
                editor.delete_penalty(self.template_id, int(selected))
                what = f"penalty {int(selected) + 1}"
            else:
                editor.delete_requirement(self.template_id, selected)
                what = f"requirement {selected!r}"
        except ServiceError as exc:
            self.post_message(Deleted(section, str(exc)))
            return
        self.post_message(Deleted(what))

    @on(Deleted)
    def _deleted(self, message: Deleted) -> None:
        if message.error:
            self._say(message.error, "warning")
            self.notify(message.error, title="not deleted", severity="warning")
            return
        self._say(f"Deleted {message.what}.")
        self.reload()
        self.app.broadcast_change("requirements")  # type: ignore[attr-defined]

    def action_tester(self) -> None:
        from badgetui.tui.screens.rule_tester import RuleTesterScreen

        if self.detail is not None:
            self.app.push_screen(RuleTesterScreen(self.template_id, self.detail.name))

    def action_dashboard(self) -> None:
        if self.detail is not None:
            self.app.open_url(self.detail.dashboard_url)

    def _say(self, line: str, level: str = "") -> None:
        message = self.query_one("#template-message", Static)
        message.update(Text(line))
        message.set_class(level == "warning", "-warning")
