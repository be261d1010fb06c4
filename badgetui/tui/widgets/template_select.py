"""A template filter whose choices load in the background (and again when templates change)."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.message import Message
from textual.widgets import Select
from textual.worker import get_current_worker

from badgetui.services.queries import template_choices


class TemplateSelect(Select[int]):
    class ChoicesLoaded(Message):
        def __init__(self, choices: list[tuple[str, int]]) -> None:
            super().__init__()
            self.choices = choices

    def __init__(self, **kwargs: Any) -> None:
        super().__init__([], prompt="template", **kwargs)
        self._choices: list[tuple[str, int]] = []

    def on_mount(self) -> None:
        self.load_choices()

    @work(thread=True, exclusive=True, group="template-choices", exit_on_error=False)
    def load_choices(self) -> None:
        choices = template_choices()
        if not get_current_worker().is_cancelled:
            self.post_message(self.ChoicesLoaded(choices))

    @on(ChoicesLoaded)
    def _loaded(self, message: ChoicesLoaded) -> None:
        message.stop()
        if message.choices == self._choices:
            return
        self._choices = message.choices
        keep = self.value
        with self.prevent(Select.Changed):
            self.set_options(message.choices)
            if keep is not Select.NULL and keep in {v for _, v in message.choices}:
                self.value = keep
