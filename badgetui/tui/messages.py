"""Messages workers post back to the UI thread."""

from __future__ import annotations

from typing import Any

from textual.message import Message


class DataChanged(Message):
    """Something in the store changed (activation, sync, edit): panes reload what they show."""

    def __init__(self, what: str = "") -> None:
        super().__init__()
        self.what = what


class StatusLoaded(Message):
    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status


class OpenTemplate(Message):
    """Ask the app to open a template's editor (from the palette, a table or a link)."""

    def __init__(self, template_id: int) -> None:
        super().__init__()
        self.template_id = template_id


class ShowLearner(Message):
    def __init__(self, username: str) -> None:
        super().__init__()
        self.username = username


class RunSync(Message):
    """Start a sync of one account (id) or of every account (None)."""

    def __init__(self, account_id: int | None) -> None:
        super().__init__()
        self.account_id = account_id
