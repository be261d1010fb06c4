"""Modal forms for provider accounts: add, change the API key, remove.

Every provider call runs in a thread worker; a refusal (wrong key, unknown organization,
unreachable host, awarded badges) comes back as a message and is shown inside the form.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static
from textual.worker import get_current_worker

from badgetui.services.templates import AccountView
from badgetui.tui.errors import one_line

PROVIDER_LABELS = {"credly": "Credly", "accredible": "Accredible"}


def shown_key(masked: str) -> str:
    """A masked key ("…abcd") without the ambiguous-width ellipsis."""
    return "***" + masked.lstrip("…") if masked else ""


def account_label(account: AccountView) -> str:
    kind = "organization" if account.provider == "credly" else "configuration"
    return f"{PROVIDER_LABELS.get(account.provider, account.provider)} {kind} {account.name}"


class FormFailed(Message):
    """The provider (or the store) refused what the form asked for."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class FormSaved(Message):
    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result


class _ServiceDialog(ModalScreen[Any]):
    """A dialog whose action runs in a worker; busy while it waits, refusals shown inline."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog.cancel")]

    busy = False

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel" and self.busy:
            return None
        return True

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.busy = busy
        for button in self.query(Button):
            button.disabled = busy
        for field in self.query(Input):
            field.disabled = busy
        self.show_error("")
        status = self.query_one("#form-status", Static)
        status.update(escape(text))
        status.display = bool(text)
        self.refresh_bindings()

    def show_error(self, text: str) -> None:
        error = self.query_one("#form-error", Static)
        error.update(escape(text))
        error.display = bool(text)

    @on(FormFailed)
    def _failed(self, message: FormFailed) -> None:
        self.set_busy(False)
        self.show_error(message.text)
        self.failed(message.text)

    @on(FormSaved)
    def _saved(self, message: FormSaved) -> None:
        self.dismiss(message.result)

    def failed(self, text: str = "") -> None:
        """Put the focus where the user fixes the problem."""

    def run_service(self, call: Any) -> None:
        """Run `call()` (sync, or returning a coroutine) off the UI thread."""
        self._call(call)

    @work(thread=True, exclusive=True, group="account-form", exit_on_error=False)
    def _call(self, call: Any) -> None:
        try:
            result = call()
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
        except Exception as exc:  # every refusal is a line in the form, never a crash
            if not get_current_worker().is_cancelled:
                self.post_message(FormFailed(one_line(exc)))
            return
        self.post_message(FormSaved(result))


class AccountFormScreen(_ServiceDialog):
    """Add a Credly organization or an Accredible configuration, or change an account's key.

    Dismisses with the stored `AccountView`, or None when cancelled.
    """

    def __init__(self, account: AccountView | None = None) -> None:
        super().__init__(classes="account-form")
        self.account = account

    @property
    def provider(self) -> str:
        if self.account is not None:
            return self.account.provider
        pressed = self.query_one("#provider", RadioSet).pressed_button
        return "accredible" if pressed is not None and pressed.id == "accredible" else "credly"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            if self.account is None:
                yield Label("Add a provider account", classes="title")
                with RadioSet(id="provider"):
                    yield RadioButton("Credly organization", id="credly", value=True)
                    yield RadioButton("Accredible configuration", id="accredible")
                yield Label("", id="identifier-label", classes="field-label")
                yield Input(id="identifier")
            else:
                yield Label(f"Change the API key of {account_label(self.account)}",
                            classes="title", markup=False)
                yield Static(self._current_key_text(), id="current-key", classes="field-label",
                             markup=False)
            yield Label("API key", classes="field-label")
            yield Input(id="api-key", password=True, placeholder="the key is checked with "
                        "the provider before it is stored")
            yield Static("", id="form-error", classes="error")
            yield Static("", id="form-status", classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Check and save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def _current_key_text(self) -> str:
        assert self.account is not None
        ident = self.account.identifier
        return f"{'Organization' if self.account.provider == 'credly' else 'Name'}: {ident}" \
            f"    current key: {shown_key(self.account.api_key)}"

    def on_mount(self) -> None:
        self.set_busy(False)
        if self.account is None:
            self._provider_changed()
            self.query_one("#identifier", Input).focus()
        else:
            self.query_one("#api-key", Input).focus()

    @on(RadioSet.Changed, "#provider")
    def _provider_changed(self) -> None:
        credly = self.provider == "credly"
        self.query_one("#identifier-label", Label).update(
            "Organization ID (a UUID, from the Credly organization settings)" if credly
            else "Configuration name (your label for this Accredible key)")
        self.query_one("#identifier", Input).placeholder = (
            "5f0c3a6e-7d1b-4c2a-9e4f-1a2b3c4d5e6f" if credly else "e.g. Main Accredible")
        self.show_error("")

    def validate(self) -> tuple[str, str] | str:
        """(identifier, key), or the problem to show."""
        key = self.query_one("#api-key", Input).value.strip()
        identifier = ""
        if self.account is None:
            identifier = self.query_one("#identifier", Input).value.strip()
            if self.provider == "credly":
                if not identifier:
                    return "the organization ID is needed"
                try:
                    uuid.UUID(identifier)
                except ValueError:
                    return f"{identifier!r} is not an organization ID (a UUID)"
            elif not identifier:
                return "a name for the configuration is needed"
        if not key:
            return "the API key is needed"
        if any(ch.isspace() for ch in key):
            return "an API key has no spaces"
        return identifier, key

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def save(self) -> None:
        if self.busy:
            return
        checked = self.validate()
        if isinstance(checked, str):
            self.show_error(checked)
            self.failed(checked)
            return
        identifier, key = checked
        accounts = self.app.services.accounts  # type: ignore[attr-defined]
        where = PROVIDER_LABELS[self.provider]
        self.set_busy(True, f"checking the key with {where}...")
        if self.account is not None:
            account_id = self.account.id
            self.run_service(lambda: accounts.update_key(account_id, key))
        elif self.provider == "credly":
            self.run_service(lambda: accounts.add_credly(identifier, key))
        else:
            self.run_service(lambda: accounts.add_accredible(identifier, key))

    def failed(self, text: str = "") -> None:
        key = self.query_one("#api-key", Input)
        if self.account is None:
            ident = self.query_one("#identifier", Input)
            (key if ident.value.strip() else ident).focus()
        else:
            key.focus()


class RemoveAccountScreen(_ServiceDialog):
    """Confirm removing an account; a refusal (awarded badges) offers to force it.

    Dismisses with the removed account's label, or None.
    """

    def __init__(self, account: AccountView, templates: int) -> None:
        super().__init__(classes="remove-account")
        self.account = account
        self.templates = templates
        self.force = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Remove {account_label(self.account)}?", classes="title", markup=False)
            yield Static(
                f"Its {self.templates} templates go with it, with their requirements and "
                "rules. Nothing changes at the provider.", classes="message", markup=False)
            yield Static("", id="form-error", classes="error")
            yield Static("", id="form-status", classes="message")
            with Horizontal(classes="buttons"):
                yield Button("Remove", id="remove", variant="error")
                yield Button("Remove with its badges", id="force", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.set_busy(False)
        self.query_one("#force", Button).display = False
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#remove")
    def _remove(self) -> None:
        self._run(force=False)

    @on(Button.Pressed, "#force")
    def _force(self) -> None:
        self._run(force=True)

    def _run(self, *, force: bool) -> None:
        if self.busy:
            return
        accounts = self.app.services.accounts  # type: ignore[attr-defined]
        account_id = self.account.id
        self.force = force
        self.set_busy(True, "removing...")
        self.run_service(lambda: accounts.remove(account_id, force=force))

    def failed(self, text: str = "") -> None:
        if not self.force and "awarded badges" in text:
            force = self.query_one("#force", Button)
            force.display = True
            self.query_one("#remove", Button).display = False
        self.query_one("#cancel", Button).focus()
