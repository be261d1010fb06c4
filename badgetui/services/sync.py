"""Sync: fetch templates from a provider, plan the changes, then apply them (semantics.md "Sync").

Credly templates missing from the provider become stale, never deleted. Accredible groups missing
from *that account* are removed locally with their requirements, but only after the plan was
shown and a configuration backup was written; `restore_backup` brings them back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from badgetui.domain.config import BadgeConfig, TemplateConfig
from badgetui.providers.accredible import AccredibleClient
from badgetui.providers.credly import CredlyClient
from badgetui.providers.errors import ProviderError
from badgetui.services.accounts import AccountService, Connections, provider_failure
from badgetui.services.common import (
    Clock,
    NotFound,
    ServiceError,
    bump_config_generation,
    current_database,
    iso,
    to_db,
)
from badgetui.services.config_io import ConfigService, _template_config
from badgetui.services.templates import SyncedTemplate, TemplateService, audit
from badgetui.store.models import (
    ConfigBackup,
    Penalty,
    ProviderAccount,
    Requirement,
    Template,
)

#: (stage, done, total): stage is "pages" or "images".
SyncProgress = Callable[[str, int, int], None]


@dataclass(slots=True)
class SyncPlan:
    account_id: int
    account: str
    provider: str
    seen: list[SyncedTemplate]
    create: list[SyncedTemplate] = field(default_factory=list)
    update: list[tuple[SyncedTemplate, list[str]]] = field(default_factory=list)
    stale: list[tuple[str, str]] = field(default_factory=list)
    remove: list[tuple[str, str, int]] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.create or self.update or self.stale or self.remove)

    def summary(self) -> str:
        parts = [f"{len(self.create)} new", f"{len(self.update)} updated"]
        if self.provider == "credly":
            parts.append(f"{len(self.stale)} stale")
        else:
            parts.append(f"{len(self.remove)} removed")
        parts.append(f"{self.unchanged} unchanged")
        return ", ".join(parts)

    def lines(self) -> list[str]:
        out = [f"{self.provider} {self.account}: {self.summary()}"]
        out += [f"  + {t.external_id} {t.name} (created inactive)" for t in self.create]
        out += [f"  ~ {t.external_id} {t.name}: {', '.join(f)}" for t, f in self.update]
        out += [f"  ! {ext} {name}: no longer at Credly, marked stale" for ext, name in self.stale]
        out += [
            f"  - {ext} {name}: gone from Accredible, removed with {n} requirements"
            for ext, name, n in self.remove
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id, "account": self.account, "provider": self.provider,
            "create": [t.external_id for t in self.create],
            "update": {t.external_id: f for t, f in self.update},
            "stale": [ext for ext, _ in self.stale],
            "remove": [ext for ext, _, _ in self.remove],
            "unchanged": self.unchanged,
        }


@dataclass(slots=True)
class SyncResult:
    plan: SyncPlan
    applied: bool
    backup_id: int | None = None
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "applied": self.applied, "backup_id": self.backup_id,
                "error": self.error}


class SyncService:
    def __init__(
        self,
        clock: Clock,
        connections: Connections,
        templates: TemplateService,
        accounts: AccountService,
        config: ConfigService,
    ) -> None:
        self.clock = clock
        self.connections = connections
        self.templates = templates
        self.accounts = accounts
        self.config = config
        self._images: dict[int, str | None] = {}

    # -- fetch ---------------------------------------------------------------------------
    async def fetch(
        self, account: ProviderAccount, on_progress: SyncProgress | None = None
    ) -> list[SyncedTemplate]:
        def pages(done: int, total: int) -> None:
            if on_progress:
                on_progress("pages", done, total)

        client = self.connections.for_account(account)
        try:
            async with client:
                if isinstance(client, CredlyClient):
                    found = await client.templates("active", on_page=pages)
                    return [
                        SyncedTemplate(t.id, t.name, t.description or "", t.image_url or "",
                                       t.state)
                        for t in found
                    ]
                assert isinstance(client, AccredibleClient)
                groups = await client.groups(on_page=pages)
                images = await self._design_images(
                    client, [g.design_id for g in groups], on_progress
                )
                return [
                    SyncedTemplate(str(g.id), g.course_name or g.name, g.description or "",
                                   images.get(g.design_id) or "" if g.design_id else "",
                                   "active")
                    for g in groups
                ]
        except ProviderError as exc:
            what = (f"organization {account.identifier}" if account.provider == "credly"
                    else f"configuration {account.name!r}")
            provider = account.provider.capitalize()
            raise provider_failure(provider, what, account.api_key, exc) from None

    async def _design_images(
        self,
        client: AccredibleClient,
        design_ids: list[int | None],
        on_progress: SyncProgress | None,
    ) -> dict[int, str | None]:
        """Design images, fetched concurrently and cached across syncs."""
        wanted = sorted({d for d in design_ids if d is not None and d not in self._images})
        done = 0
        limit = asyncio.Semaphore(16)

        async def one(design_id: int) -> None:
            nonlocal done
            async with limit:
                try:
                    self._images[design_id] = await client.design_image(design_id)
                except ProviderError:
                    self._images[design_id] = None
            done += 1
            if on_progress:
                on_progress("images", done, len(wanted))

        await asyncio.gather(*(one(d) for d in wanted))
        return {d: self._images.get(d) for d in design_ids if d is not None}

    # -- plan ----------------------------------------------------------------------------
    def plan(self, account: ProviderAccount, seen: list[SyncedTemplate]) -> SyncPlan:
        existing = {t.external_id: t for t in Template.select().where(
            Template.account == account.id).namedtuples()}
        plan = SyncPlan(account.id, account.name, account.provider, seen)
        seen_ids = set()
        for item in seen:
            seen_ids.add(item.external_id)
            row = existing.get(item.external_id)
            if row is None:
                plan.create.append(item)
                continue
            fields = [
                name for name, value in (("name", item.name), ("description", item.description),
                                         ("image", item.image_url), ("state", item.state))
                if getattr(row, "image_url" if name == "image" else name) != value
            ]
            if row.stale:
                fields.append("seen again")
            if row.deleted:
                fields.append("back at the provider")
            if fields:
                plan.update.append((item, fields))
            else:
                plan.unchanged += 1
        for ext, row in existing.items():
            if ext in seen_ids:
                continue
            if account.provider == "credly":
                if not row.stale and not row.deleted:
                    plan.stale.append((ext, row.name))
            elif not row.deleted:
                count = Requirement.select().where(Requirement.template == row.id).count()
                plan.remove.append((ext, row.name, count))
        return plan

    # -- apply ---------------------------------------------------------------------------
    def apply(self, plan: SyncPlan) -> SyncResult:
        account = ProviderAccount.get_by_id(plan.account_id)
        backup_id = None
        with current_database().atomic():
            if plan.remove:
                backup_id = self.write_backup(
                    account, [ext for ext, _, _ in plan.remove],
                    reason=f"sync of {account.provider} {account.name} removed "
                           f"{len(plan.remove)} groups",
                )
            self.templates.upsert_synced(account, plan.seen)
            if plan.remove:
                rows = list(Template.select().where(
                    (Template.account == account.id)
                    & Template.external_id.in_([ext for ext, _, _ in plan.remove])
                ))
                ids = [r.id for r in rows]
                Requirement.delete().where(Requirement.template.in_(ids)).execute()
                Penalty.delete().where(Penalty.template.in_(ids)).execute()
                Template.update(deleted=True, stale=False, is_active=False,
                                updated_at=to_db(self.clock())).where(
                    Template.id.in_(ids)).execute()
                bump_config_generation()
            self.accounts.touch_sync(account.id, plan.summary())
            audit(self.clock, "sync.apply", f"{account.provider}:{account.identifier}",
                  plan.as_dict(), actor="sync")
        return SyncResult(plan, True, backup_id)

    async def sync(
        self,
        account_ref: str | int | None = None,
        *,
        dry_run: bool = False,
        on_progress: SyncProgress | None = None,
        confirm_removals: Callable[[SyncPlan], bool] | None = None,
    ) -> list[SyncResult]:
        """Sync one account or all of them; an account that fails does not stop the others."""
        accounts = (
            [self.templates.account(account_ref)] if account_ref is not None
            else list(ProviderAccount.select().order_by(ProviderAccount.id))
        )
        if not accounts:
            raise ServiceError("no provider accounts: add one with `badgetui provider add`")
        results = []
        for account in accounts:
            try:
                seen = await self.fetch(account, on_progress)
            except ServiceError as exc:
                empty = SyncPlan(account.id, account.name, account.provider, [])
                self.accounts.touch_sync(account.id, f"failed: {exc}")
                results.append(SyncResult(empty, False, error=str(exc)))
                continue
            plan = self.plan(account, seen)
            if dry_run or (plan.remove and confirm_removals and not confirm_removals(plan)):
                results.append(SyncResult(plan, False))
                continue
            results.append(self.apply(plan))
        return results

    # -- backups -------------------------------------------------------------------------
    def write_backup(self, account: ProviderAccount, external_ids: list[str], reason: str) -> int:
        rows = list(Template.select().where(
            (Template.account == account.id) & Template.external_id.in_(external_ids)))
        templates = []
        for row in rows:
            entry = _template_config(row, account.identifier).model_dump()
            entry["template"] = {"name": row.name, "description": row.description,
                                 "image_url": row.image_url, "state": row.state}
            templates.append(entry)
        content = json.dumps({"version": 1, "provider": account.provider,
                              "account": account.identifier, "templates": templates},
                             indent=2, sort_keys=True)
        backup = ConfigBackup.create(created_at=to_db(self.clock()), account=account.id,
                                     reason=reason, content=content)
        return backup.id

    def backups(self) -> list[dict[str, Any]]:
        out = []
        for b in ConfigBackup.select().order_by(ConfigBackup.id.desc()):
            doc = json.loads(b.content)
            out.append({
                "id": b.id, "created_at": iso(b.created_at), "reason": b.reason,
                "account": doc.get("account"), "provider": doc.get("provider"),
                "templates": [t["external_id"] for t in doc.get("templates", [])],
            })
        return out

    def restore_backup(self, backup_id: int) -> list[str]:
        """Bring back the requirements and rules a sync removed (templates stay inactive
        until the provider has them again)."""
        backup = ConfigBackup.get_or_none(ConfigBackup.id == backup_id)
        if backup is None:
            raise NotFound(f"no backup {backup_id}")
        doc = json.loads(backup.content)
        account = ProviderAccount.get_or_none(
            (ProviderAccount.provider == doc["provider"])
            & (ProviderAccount.identifier == doc["account"])
        )
        if account is None:
            raise ServiceError(f"backup {backup_id} belongs to {doc['provider']} account "
                               f"{doc['account']}, which no longer exists")
        entries = []
        restored = []
        now = to_db(self.clock())
        with current_database().atomic():
            for item in doc["templates"]:
                meta = item.pop("template")
                row = Template.get_or_none(
                    (Template.account == account.id) & (Template.external_id == item["external_id"])
                )
                if row is None:
                    row = Template.create(
                        account=account.id, provider=account.provider,
                        external_id=item["external_id"], name=meta["name"],
                        description=meta["description"], image_url=meta["image_url"],
                        state=meta["state"], stale=True, created_at=now, updated_at=now,
                    )
                elif row.deleted:
                    Template.update(deleted=False, stale=True, updated_at=now).where(
                        Template.id == row.id).execute()
                entry = TemplateConfig.model_validate(item)
                stale = row.stale or row.deleted
                entries.append(entry.model_copy(update={"active": entry.active and not stale}))
                restored.append(f"{account.provider}:{entry.external_id}")
            self.config.import_config(BadgeConfig(templates=entries))
            audit(self.clock, "backup.restore", f"backup {backup_id}", {"templates": restored})
        return restored
