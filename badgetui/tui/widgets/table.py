"""A DataTable whose painted lines always follow its column widths."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import RowKey


class LiveTable(DataTable[Any]):
    """Textual's DataTable measures new rows when it goes idle, after they may already have
    been painted, and keeps the lines painted with the old widths (its caches are keyed by an
    update count the measuring does not move). A table refreshed behind a dialog showed new
    rows in stale, cut columns; here a change of width invalidates those lines."""

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        before = [column.content_width for column in self.columns.values()]
        super()._update_dimensions(new_rows)
        if before != [column.content_width for column in self.columns.values()]:
            self._update_count += 1
            self.refresh()
