"""Command palette: open a template by name, sync one account, jump to a learner."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from badgetui.tui.messages import OpenTemplate, RunSync, ShowLearner

if TYPE_CHECKING:
    from badgetui.tui.app import BadgeApp


class JumpCommands(Provider):
    """Templates and accounts are loaded once, off the event loop, and matched in memory."""

    async def startup(self) -> None:
        app: BadgeApp = self.app  # type: ignore[assignment]
        self._templates: list[Any] = await asyncio.to_thread(app.services.templates.list)
        self._accounts: list[Any] = await asyncio.to_thread(app.services.templates.accounts)

    def _commands(self) -> list[tuple[str, str, Any]]:
        out = []
        for tpl in self._templates:
            out.append((f"Open template: {tpl.name}",
                        f"{tpl.provider} {tpl.external_id} · {tpl.account}",
                        OpenTemplate(tpl.id)))
        for account in self._accounts:
            out.append((f"Sync account: {account.name}",
                        f"{account.provider} {account.identifier}", RunSync(account.id)))
        return out

    async def discover(self) -> Hits:
        for title, help_text, message in self._commands()[:20]:
            yield DiscoveryHit(title, partial(self.app.post_message, message), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, message in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title),
                          partial(self.app.post_message, message), help=help_text)
        name = query.strip()
        if name and " " not in name:
            yield Hit(0.1, f"Jump to learner: {name}",
                      partial(self.app.post_message, ShowLearner(name)),
                      help="show this learner's progress")
