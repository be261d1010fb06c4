"""Providers: Credly organizations and Accredible configurations, their keys, and Sync.

A sync runs in two steps so that nothing is removed without a yes:
1. a thread worker fetches every account (progress posted in time-batched messages), plans
   it, applies at once the plans that remove nothing and posts the others (`SyncPlanned`);
2. for each of those the plan is shown in a modal; the confirmed ones are applied by a
   second thread worker (`SyncApplied`), the others are left untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.markup import escape
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, DataTable, Label, ProgressBar, Static
from textual.worker import Worker, WorkerState, get_current_worker

from badgetui.services.accounts import Rotation, base_label
from badgetui.services.common import ServiceError
from badgetui.services.sync import SyncPlan, SyncResult
from badgetui.services.templates import AccountView
from badgetui.tui.messages import DataChanged
from badgetui.tui.screens.account_form import (
    AccountFormScreen,
    RemoveAccountScreen,
    account_label,
    shown_key,
)
from badgetui.tui.screens.sync_dialogs import ConfirmRemovalsScreen
from badgetui.tui.widgets.pane import Pane

#: Seconds between two progress messages from a running sync.
PROGRESS_EVERY = 0.15
#: Changed templates listed per account in the result (the summary line counts them all).
RESULT_LINES = 30

COLUMNS = (
    ("provider", "Provider"), ("name", "Name"), ("key", "Key"), ("age", "Key age"),
    ("expires", "Key expiry"), ("templates", "Templates"), ("synced", "Last sync"),
    ("result", "Last result"),
)


@dataclass(slots=True)
class AccountRow:
    """One account as the pane shows it (computed off the UI thread)."""

    view: AccountView
    templates: int
    active: int
    key_age_days: int | None
    expires_at: datetime | None
    days_left: int | None
    expired: bool
    warning: str
    #: The expiry is creation + 180 days because Credly listed none for the key.
    assumed: bool = False


def _parse(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


def _when(moment: str | None) -> str:
    parsed = _parse(moment)
    return f"{parsed:%Y-%m-%d %H:%M}" if parsed else "never"


def result_lines(result: SyncResult, limit: int = RESULT_LINES) -> list[str]:
    """What a finished sync says about one account (at most `limit` changed templates)."""
    plan = result.plan
    if result.error:
        return [f"{plan.provider} {plan.account}: FAILED: {result.error}"]
    if not result.applied:
        return [f"{plan.provider} {plan.account}: {plan.summary()}",
                "  removals not confirmed: nothing applied for this account"]
    lines = plan.lines()
    if len(lines) > limit + 1:
        lines = [*lines[: limit + 1], f"  ... and {len(lines) - limit - 1} more"]
    if result.backup_id:
        lines.append(f"  backup {result.backup_id} written before removing "
                     f"(badgetui backup restore {result.backup_id})")
    return lines


def short_result(text: str) -> str:
    """A last-sync result for the table: "3 new, 1 updated", "no changes" or "failed"."""
    if not text:
        return ""
    if text.startswith("failed"):
        return "failed"
    parts = [p for p in text.split(", ") if not p.startswith("0 ") and "unchanged" not in p]
    return ", ".join(parts) or "no changes"


# -- messages ---------------------------------------------------------------------------------
class AccountsLoaded(Message):
    def __init__(self, rows: list[AccountRow]) -> None:
        super().__init__()
        self.rows = rows


class SyncProgressed(Message):
    """stage is "connecting", "pages", "images" or "applying"."""

    def __init__(self, account: str, stage: str, done: int, total: int) -> None:
        super().__init__()
        self.account = account
        self.stage = stage
        self.done = done
        self.total = total


class SyncPlanned(Message):
    """Step 1 done: `results` were applied (or failed), `pending` wait for a yes."""

    def __init__(self, results: list[SyncResult], pending: list[SyncPlan]) -> None:
        super().__init__()
        self.results = results
        self.pending = pending


class SyncApplied(Message):
    def __init__(self, results: list[SyncResult]) -> None:
        super().__init__()
        self.results = results


class KeyRotated(Message):
    """A Credly key was rotated and the new one verified and stored."""

    def __init__(self, rotation: Rotation) -> None:
        super().__init__()
        self.rotation = rotation


class SyncCancelled(Exception):
    """Raised from the progress callback to stop a sync whose worker was cancelled."""


class ProgressReporter:
    """The `on_progress` callback: posts at most one message per `every` seconds per stage."""

    def __init__(self, post: Callable[[Message], Any], account: str, *,
                 every: float = PROGRESS_EVERY) -> None:
        self.post = post
        self.account = account
        self.every = every
        self.worker = get_current_worker()
        self._last = float("-inf")
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.worker.is_cancelled:
            raise SyncCancelled
        now = time.monotonic()
        if stage == self._stage and done < total and now - self._last < self.every:
            return
        self._stage, self._last = stage, now
        self.post(SyncProgressed(self.account, stage, done, total))


class AccountTable(DataTable[Any]):
    """The accounts; Enter asks to edit (a click only moves the cursor)."""

    class EditRequested(Message):
        pass

    def action_select_cursor(self) -> None:
        if self.row_count:
            self.post_message(self.EditRequested())


# -- the pane ---------------------------------------------------------------------------------
class ProvidersPane(Pane):
    """Provider accounts with key age, template counts, last sync; add/edit/remove and Sync."""

    BINDINGS = [
        Binding("a", "add", "Add", id="providers.add",
                tooltip="Add a Credly organization or an Accredible configuration"),
        Binding("k", "edit", "Edit key", id="providers.edit",
                tooltip="Change the selected account's API key (enter works too)"),
        Binding("d,delete", "remove", "Remove", id="providers.remove",
                tooltip="Remove the selected account with its templates"),
        Binding("s", "sync", "Sync", id="providers.sync",
                tooltip="Fetch templates from the selected account's provider"),
        Binding("S", "sync_all", "Sync all", id="providers.sync_all",
                tooltip="Sync every account"),
        Binding("R", "rotate", "Rotate key", id="providers.rotate",
                tooltip="Rotate the selected Credly organization's API key through Credly "
                "(the new key is checked before it replaces the old one)"),
        Binding("m", "migrate", "Migrate", id="providers.migrate",
                tooltip="Import a running Open edX Credentials site's badges: accounts, "
                "templates, requirements, progress and badges (the source is only read)"),
    ]

    syncing: reactive[bool] = reactive(False, bindings=True)
    """A sync (fetch, confirmation or apply) is under way."""
    selected: reactive[int | None] = reactive(None, bindings=True)
    """Id of the account under the cursor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("pane")
        self.rows: dict[int, AccountRow] = {}
        self.last_results: list[SyncResult] = []
        self._select_after_load: int | None = None
        self._results: list[SyncResult] = []
        self._pending: list[SyncPlan] = []
        self._confirmed: list[SyncPlan] = []
        self._loaded_once = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="toolbar", id="providers-toolbar"):
            yield Button("Add", id="providers-add", compact=True)
            yield Button("Edit key", id="providers-edit", compact=True)
            yield Button("Remove", id="providers-remove", compact=True)
            yield Button("Sync", id="providers-sync", compact=True, variant="primary")
            yield Button("Sync all", id="providers-sync-all", compact=True)
        table = AccountTable(cursor_type="row", zebra_stripes=True, id="accounts")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        with Horizontal(id="sync-box"):
            yield Label("", id="sync-label", markup=False)
            yield ProgressBar(id="sync-progress", show_eta=False)
        with VerticalScroll(id="providers-info"):
            yield Static("", id="account-detail")
            yield Static("", id="sync-result", markup=False)

    # -- loading --------------------------------------------------------------------------
    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="providers-load", exit_on_error=False,
          name="providers")
    def load(self) -> None:
        services = self.badge_app.services
        views = services.templates.accounts()
        keys = {k.account_id: k for k in services.accounts.key_status()}
        counts = services.accounts.template_counts()
        now = services.clock()
        rows = []
        for view in views:
            key = keys.get(view.id)
            created = _parse(view.key_created_at)
            total, active = counts.get(view.id, (0, 0))
            rows.append(AccountRow(
                view, total, active,
                (now - created).days if created else None,
                key.expires_at if key else None,
                key.days_left if key else None,
                bool(key and key.expires_at and key.expires_at <= now),
                key.warning if key else "",
                bool(key and key.assumed),
            ))
        if not get_current_worker().is_cancelled:
            self.post_message(AccountsLoaded(rows))

    @on(DataChanged)
    def _data_changed(self) -> None:
        self.reload()

    @on(AccountsLoaded)
    def _loaded(self, message: AccountsLoaded) -> None:
        table = self.query_one(AccountTable)
        keep = self._select_after_load if self._select_after_load is not None else self.selected
        self._select_after_load = None
        self._loaded_once = True
        self.rows = {row.view.id: row for row in message.rows}
        with self.app.batch_update():
            table.clear()
            for row in message.rows:
                table.add_row(*self._cells(row), key=str(row.view.id))
        if message.rows:
            ids = [row.view.id for row in message.rows]
            table.move_cursor(row=ids.index(keep) if keep in ids else 0)
            self.selected = ids[table.cursor_row]
        else:
            self.selected = None
        self._show_detail()
        self._update_buttons()

    def _cells(self, row: AccountRow) -> list[Text]:
        colors = self.app.get_css_variables()
        view = row.view
        age = f"{row.key_age_days}d" if row.key_age_days is not None else "-"
        if view.provider != "credly":
            expiry = Text("no expiry")
        elif row.days_left is None:
            expiry = Text("unknown")
        elif row.expired:
            expiry = Text("EXPIRED", style=f"bold {colors.get('error', 'red')}")
        elif row.warning:
            expiry = Text(f"in {row.days_left}d!", style=f"bold {colors.get('warning', 'yellow')}")
        else:
            expiry = Text(f"in {row.days_left}d")
        templates = f"{row.templates}" + (f" ({row.active} on)" if row.active else "")
        result_text = Text(short_result(view.last_sync_result))
        if view.last_sync_result.startswith("failed"):
            result_text.stylize(colors.get("error", "red"))
        if view.paused_reason:
            result_text = Text("delivery paused", style=f"bold {colors.get('warning', 'yellow')}")
        return [Text(view.provider), Text(view.name), Text(shown_key(view.api_key)), Text(age),
                expiry, Text(templates, justify="right"), Text(_when(view.last_sync_at)),
                result_text]

    def _show_detail(self) -> None:
        detail = self.query_one("#account-detail", Static)
        row = self.rows.get(self.selected) if self.selected is not None else None
        if row is None:
            detail.update("No provider accounts yet: press [b]a[/] to add a Credly organization "
                          "or an Accredible configuration, then [b]s[/] to sync its templates.\n"
                          "Running badges in Open edX Credentials? Press [b]m[/] to migrate its "
                          "accounts, templates, learners' progress and badges in one step."
                          if not self.rows else "")
            return
        view = row.view
        lines = [f"[b]{escape(account_label(view))}[/]"]
        if view.provider == "credly":
            lines[0] += f"  (organization ID {escape(view.identifier)})"
        key = f"key {escape(shown_key(view.api_key))}" if view.api_key else "no API key"
        if view.api_key and view.key_created_at:
            key += f", created {_parse(view.key_created_at):%Y-%m-%d}"
        if row.expires_at is not None:
            key += f", expires {row.expires_at:%Y-%m-%d}"
            if row.assumed:
                key += " (assumed: 180 days, Credly listed no expiry)"
        lines.append(key)
        if view.auth == "oauth":
            lines.append(f"OAuth client {escape(view.client_id)} "
                         f"(secret {escape(shown_key(view.client_secret))}) signs every call")
        if view.api_url:
            lines.append(f"API base {escape(base_label(view.api_url))}")
        if row.warning:
            lines.append(f"[b $warning]{escape(row.warning.replace('…', '***'))}[/]")
        if view.paused_reason:
            lines.append(f"[b $error]delivery paused: {escape(view.paused_reason)}[/] "
                         "(change the key with k to resume)")
        lines.append(f"{row.templates} templates, {row.active} active; last sync "
                     f"{_when(view.last_sync_at)}: {escape(view.last_sync_result or '-')}")
        detail.update("\n".join(lines))

    @on(DataTable.RowHighlighted, "#accounts")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        self.selected = int(key) if key is not None else None
        self._show_detail()

    def watch_syncing(self, syncing: bool) -> None:
        self.set_class(syncing, "-syncing")
        self._update_buttons()

    def watch_selected(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        if not self.is_mounted:
            return
        none = self.selected is None
        self.query_one("#providers-edit", Button).disabled = none
        self.query_one("#providers-remove", Button).disabled = none
        self.query_one("#providers-sync", Button).disabled = none or self.syncing
        self.query_one("#providers-sync-all", Button).disabled = not self.rows or self.syncing

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("edit", "remove", "sync", "rotate") and self.selected is None:
            return None
        if action == "rotate":
            row = self.rows.get(self.selected)  # type: ignore[arg-type]
            return True if row and self.rotatable(row.view) else None
        if action in ("sync", "sync_all") and self.syncing:
            return None
        if action == "sync_all" and not self.rows:
            return None
        return True

    # -- add / edit / remove --------------------------------------------------------------
    def action_migrate(self) -> None:
        from badgetui.tui.screens.migrate_dialog import MigrateScreen

        self.app.push_screen(MigrateScreen())

    @on(Button.Pressed, "#providers-add")
    def action_add(self) -> None:
        self.app.push_screen(AccountFormScreen(), callback=self._account_saved)

    @on(AccountTable.EditRequested)
    @on(Button.Pressed, "#providers-edit")
    def action_edit(self) -> None:
        row = self.rows.get(self.selected) if self.selected is not None else None
        if row is not None:
            self.app.push_screen(AccountFormScreen(row.view), callback=self._account_saved)

    def _account_saved(self, view: AccountView | None) -> None:
        if view is None:
            return
        self._select_after_load = view.id
        self.notify(f"{account_label(view)} saved (key {shown_key(view.api_key)})",
                    title="providers")
        self.badge_app.broadcast_change("providers")

    @on(Button.Pressed, "#providers-remove")
    def action_remove(self) -> None:
        row = self.rows.get(self.selected) if self.selected is not None else None
        if row is not None:
            self.app.push_screen(RemoveAccountScreen(row.view, row.templates),
                                 callback=self._removed)

    def _removed(self, label: str | None) -> None:
        if label is None:
            return
        self.notify(f"removed {label}", title="providers")
        self.badge_app.broadcast_change("providers")

    # -- key rotation ---------------------------------------------------------------------
    @staticmethod
    def rotatable(view: AccountView) -> bool:
        """A Credly organization with a key (OAuth-only accounts have none to rotate)."""
        return view.provider == "credly" and bool(view.api_key)

    def action_rotate(self) -> None:
        if self.selected is not None:
            self.rotate_key(self.selected)

    def rotate_key(self, account_id: int) -> None:
        """Rotate one account's key in a worker; the result comes back as `KeyRotated`."""
        row = self.rows.get(account_id)
        if row is not None:
            self.notify(f"rotating the key of {account_label(row.view)}...", title="providers")
        self._rotate(account_id)

    @work(thread=True, exclusive=True, group="providers-rotate", exit_on_error=False,
          name="rotate")
    def _rotate(self, account_id: int) -> None:
        rotation = asyncio.run(self.badge_app.services.accounts.rotate(account_id))
        self.post_message(KeyRotated(rotation))

    @on(KeyRotated)
    def _rotated(self, message: KeyRotated) -> None:
        rotation = message.rotation
        view = rotation.view
        until = "no expiry listed" if rotation.expires_at is None else (
            f"expires {rotation.expires_at:%Y-%m-%d}"
            + (" (assumed)" if rotation.assumed else ""))
        self._select_after_load = view.id
        self.notify(f"{account_label(view)}: key rotated, now {shown_key(view.api_key)}, "
                    f"{until}", title="providers")
        self.badge_app.broadcast_change("providers")

    # -- sync -----------------------------------------------------------------------------
    @on(Button.Pressed, "#providers-sync")
    def action_sync(self) -> None:
        if self.selected is not None:
            self.start_sync(self.selected)

    @on(Button.Pressed, "#providers-sync-all")
    def action_sync_all(self) -> None:
        self.start_sync(None)

    def start_sync(self, account_id: int | None) -> None:
        """Sync one account (id) or every account (None); refused while a sync runs."""
        if self.syncing:
            self.notify("a sync is already running", title="sync", severity="warning")
            return
        if not self.rows and self.is_mounted and self._loaded_once:
            self.notify("no provider accounts: add one first (a)", title="sync",
                        severity="warning")
            return
        self.syncing = True
        self._results, self._pending, self._confirmed = [], [], []
        self.query_one("#sync-label", Label).update("sync: starting")
        self.query_one("#sync-progress", ProgressBar).update(total=None, progress=0)
        self.fetch_and_plan(account_id)

    @work(thread=True, exclusive=True, group="sync", exit_on_error=False, name="sync")
    def fetch_and_plan(self, account_id: int | None) -> None:
        services = self.badge_app.services
        worker = get_current_worker()
        views = services.templates.accounts()
        if account_id is not None:
            views = [v for v in views if v.id == account_id]
            if not views:
                raise ServiceError(f"no provider account {account_id} (removed?)")
        if not views:
            raise ServiceError("no provider accounts: add one first (a)")
        results: list[SyncResult] = []
        pending: list[SyncPlan] = []
        for view in views:
            if worker.is_cancelled:
                return
            label = f"{view.provider} {view.name}"
            report = ProgressReporter(self.post_message, label)
            report("connecting", 0, 0)
            account = services.templates.account(view.id)
            try:
                seen = asyncio.run(services.sync.fetch(account, report))
            except SyncCancelled:
                return
            except ServiceError as exc:
                services.accounts.touch_sync(view.id, f"failed: {exc}")
                empty = SyncPlan(view.id, view.name, view.provider, [])
                results.append(SyncResult(empty, False, error=str(exc)))
                continue
            plan = services.sync.plan(account, seen)
            if plan.remove:
                pending.append(plan)
            else:
                report("applying", 0, 0)
                results.append(services.sync.apply(plan))
        if not worker.is_cancelled:
            self.post_message(SyncPlanned(results, pending))

    @on(SyncProgressed)
    def _progressed(self, message: SyncProgressed) -> None:
        if not self.syncing:
            return
        bar = self.query_one("#sync-progress", ProgressBar)
        what = {"pages": "pages", "images": "images"}.get(message.stage)
        if what and message.total:
            text = f"{message.account}: {what} {message.done}/{message.total}"
            bar.update(total=message.total, progress=message.done)
        else:
            text = f"{message.account}: {message.stage}..."
            bar.update(total=None, progress=0)
        self.query_one("#sync-label", Label).update(text)

    @on(SyncPlanned)
    def _planned(self, message: SyncPlanned) -> None:
        self._results = list(message.results)
        self._pending = list(message.pending)
        self._confirmed = []
        if self._results:  # what was applied already shows in the table
            self.reload()
        self._ask_next()

    def _ask_next(self) -> None:
        if self._pending:
            plan = self._pending.pop(0)
            self.query_one("#sync-label", Label).update(
                f"{plan.provider} {plan.account}: waiting for confirmation")
            self.app.push_screen(ConfirmRemovalsScreen(plan),
                                 callback=partial(self._answered, plan))
        elif self._confirmed:
            self.query_one("#sync-label", Label).update("applying...")
            self.apply_plans(self._confirmed)
        else:
            self._finish([])

    def _answered(self, plan: SyncPlan, confirmed: bool | None) -> None:
        if confirmed:
            self._confirmed.append(plan)
        else:
            self._results.append(SyncResult(plan, False))
        self._ask_next()

    @work(thread=True, exclusive=True, group="sync-apply", exit_on_error=False, name="sync")
    def apply_plans(self, plans: list[SyncPlan]) -> None:
        sync = self.badge_app.services.sync
        self.post_message(SyncApplied([sync.apply(plan) for plan in plans]))

    @on(SyncApplied)
    def _applied(self, message: SyncApplied) -> None:
        self._finish(message.results)

    def _finish(self, applied: list[SyncResult]) -> None:
        results = [*self._results, *applied]
        order = {id(r): n for n, r in enumerate(results)}
        results.sort(key=lambda r: (r.plan.provider, r.plan.account_id, order[id(r)]))
        self.last_results = results
        self._results, self._pending, self._confirmed = [], [], []
        self.syncing = False
        lines = [line for result in results for line in result_lines(result)]
        self.query_one("#sync-result", Static).update("\n".join(["Last sync:", *lines]))
        failed = [r for r in results if r.error]
        summary = "; ".join(
            f"{r.plan.account}: " + ("failed" if r.error else r.plan.summary() if r.applied
                                     else "not applied")
            for r in results)
        self.notify(summary or "nothing synced", title="sync",
                    severity="error" if failed else "information")
        self.badge_app.broadcast_change("providers")

    @on(Worker.StateChanged)
    def _sync_worker_ended(self, event: Worker.StateChanged) -> None:
        """A failed or cancelled sync worker (the error itself goes through Pane's route)."""
        if event.worker.group in ("sync", "sync-apply") and event.state in (
            WorkerState.ERROR, WorkerState.CANCELLED
        ):
            self.syncing = False
            self._results, self._pending, self._confirmed = [], [], []
            if event.state is WorkerState.ERROR:
                self.query_one("#sync-result", Static).update(
                    f"Last sync failed: {event.worker.error}")
            self.reload()
