"""The question a sync asks before anything is removed: the plan, then apply or keep."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from badgetui.services.sync import SyncPlan


def plan_text(plan: SyncPlan, others: int = 20) -> list[str]:
    """The plan's lines, removals first; other changes after them, at most `others`."""
    head, *rest = plan.lines()
    removals = [line for line in rest if line.startswith("  - ")]
    changes = [line for line in rest if not line.startswith("  - ")]
    if len(changes) > others:
        changes = [*changes[:others], f"  ... and {len(changes) - others} more changes"]
    return [head, *removals, *changes]


class ConfirmRemovalsScreen(ModalScreen[bool]):
    """Shows `plan.lines()`; dismisses True to apply the plan (removals included), else False."""

    BINDINGS = [Binding("escape", "dismiss(False)", "Keep them", id="sync.keep")]

    def __init__(self, plan: SyncPlan) -> None:
        super().__init__(classes="confirm-removals")
        self.plan = plan

    def compose(self) -> ComposeResult:
        plan = self.plan
        count = len(plan.remove)
        with Vertical(classes="dialog"):
            yield Label(f"Sync of {plan.provider} {plan.account} would remove {count} "
                        f"group{'s' if count != 1 else ''}", classes="title", markup=False)
            with VerticalScroll(id="plan-lines"):
                yield Static("\n".join(plan_text(plan)), markup=False)
            yield Static(
                "A configuration backup is written first (badgetui backup restore). "
                "Keep them: nothing is applied for this account.", classes="message",
                markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Remove and apply", id="apply", variant="warning")
                yield Button("Keep them", id="keep", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    @on(Button.Pressed, "#apply")
    def _apply(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#keep")
    def _keep(self) -> None:
        self.dismiss(False)
