"""Progress: learners × templates, paged and filtered in SQL, live; detail per requirement."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Select, Static

from badgetui.services.queries import count_progress, list_progress, progress_detail
from badgetui.tui.widgets.paged_table import Filters, PagedTablePane, Row, when
from badgetui.tui.widgets.template_select import TemplateSelect

COMPLETE_CHOICES = [("complete", True), ("incomplete", False)]


def bar(done: int, total: int, width: int = 10) -> str:
    filled = round(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


def _query_args(filters: Filters) -> dict[str, Any]:
    return {"learner_prefix": filters.get("text"), "template": filters.get("template"),
            "complete": filters.get("complete")}


class DetailLoaded(Message):
    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__()
        self.detail = detail


class ProgressDetailScreen(ModalScreen[None]):
    """Each requirement of the template, by group, with the event that fulfilled it."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="detail.close")]

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__()
        self.detail = detail

    def compose(self) -> ComposeResult:
        d = self.detail
        with VerticalScroll(classes="dialog", id="progress-detail"):
            yield Static(f"{d['username']} · {d['template']}", classes="title", markup=False)
            yield Static(self._summary(), id="detail-summary", markup=False)
            table: DataTable[Any] = DataTable(cursor_type="row", id="detail-requirements")
            yield table

    def _summary(self) -> str:
        d = self.detail
        state = "complete" if d["complete"] else "incomplete"
        line = (f"{bar(d['fulfilled_groups'], d['total_groups'], 20)}  groups "
                f"{d['fulfilled_groups']}/{d['total_groups']} fulfilled, {state}; "
                f"last change {when(d['updated_at'])}")
        badge = d.get("badge")
        if badge:
            line += (f"\nholds badge {badge['id']} ({badge['status']}, provider "
                     f"{badge['provider_state']}) since {when(badge['awarded_at'])}")
        return line

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Group", "Requirement", "Event type", "", "Fulfilled by event",
                          "Event time", "From")
        for req in self.detail["requirements"]:
            f = req["fulfilled"]
            mark = Text("✓", style="bold green") if f else Text("·", style="dim")
            where = ""
            if f and f["source"]:
                where = f["source"] + (f":{f['line']}" if f["line"] is not None else "")
            table.add_row(
                req["group"], req["description"] or req["key"],
                req["event_type"].removeprefix("org.openedx.learning."), mark,
                f["event_id"] if f else "not yet", when(f["event_time"]) if f else "", where,
                key=str(req["id"]),
            )
        table.focus()

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class ProgressPane(PagedTablePane):
    COLUMNS = ("Learner", "Template", "Progress", "Groups", "Badge", "Fulfilled", "Updated")
    BINDINGS = [
        *PagedTablePane.BINDINGS,
        Binding("d", "detail", "Detail (⏎)", id="progress.detail"),
    ]

    def compose_filters(self) -> Iterable[Any]:
        yield TemplateSelect(id="template")
        yield Select(COMPLETE_CHOICES, prompt="complete?", id="complete")

    def fetch(self, filters: Filters, limit: int, offset: int) -> list[Row]:
        rows = list_progress(**_query_args(filters), limit=limit, offset=offset)
        return [
            (str(r.id), (r.username, r.template, bar(r.fulfilled_groups, r.total_groups),
                         f"{r.fulfilled_groups}/{r.total_groups}",
                         "held" if r.holds_badge else "", ", ".join(r.fulfilled),
                         when(r.updated_at)))
            for r in rows
        ]

    def count(self, filters: Filters) -> int | None:
        return count_progress(**_query_args(filters))

    def filter_learner(self, username: str) -> None:
        self.query_one("#text", Input).value = username

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.load_detail(int(key))

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def load_detail(self, progress_id: int) -> None:
        self.post_message(DetailLoaded(progress_detail(progress_id)))

    @on(DetailLoaded)
    def _show_detail(self, message: DetailLoaded) -> None:
        self.app.push_screen(ProgressDetailScreen(message.detail))
