"""Provider accounts and badge templates: what sync brings in and operators activate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from peewee import JOIN, fn

from badgetui.domain.secrets import mask
from badgetui.services.common import (
    Clock,
    NotFound,
    ServiceError,
    bump_config_generation,
    executemany,
    insert_rows,
    iso,
    set_meta,
    to_db,
)
from badgetui.store.models import (
    AuditLog,
    Badge,
    IntakeRecord,
    ProviderAccount,
    Requirement,
    Template,
)

PROVIDERS = ("credly", "accredible")

_CREATE_FIELDS = (
    Template.account, Template.provider, Template.external_id, Template.name,
    Template.description, Template.image_url, Template.state, Template.created_at,
    Template.updated_at,
)


def _update_sql(*fields: Any) -> str:
    columns = ", ".join(f'"{f.column_name}" = ?' for f in fields)
    return f'UPDATE "{Template._meta.table_name}" SET {columns} WHERE "id" = ?'


_UPDATE_SQL = _update_sql(Template.name, Template.description, Template.image_url,
                          Template.state, Template.stale, Template.deleted, Template.updated_at)
_STALE_SQL = _update_sql(Template.stale, Template.updated_at)


@dataclass(slots=True)
class AccountView:
    id: int
    provider: str
    identifier: str
    name: str
    api_key: str  # masked
    key_created_at: str | None
    last_sync_at: str | None
    last_sync_result: str
    paused_reason: str
    #: The account's own API base ('' = the settings' base).
    api_url: str = ""
    #: "api key" or "oauth" (Credly client credentials, used instead of the key).
    auth: str = "api key"
    client_id: str = ""
    client_secret: str = ""  # masked
    #: The key's expiry as the provider listed it (None: not listed, or no key).
    key_expires_at: str | None = None


@dataclass(slots=True)
class TemplateView:
    id: int
    provider: str
    account_id: int
    account: str
    external_id: str
    name: str
    state: str
    active: bool
    stale: bool
    deleted: bool
    requirements: int
    awarded: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SyncedTemplate:
    """A template as a provider describes it (the input of a sync apply)."""

    external_id: str
    name: str
    description: str = ""
    image_url: str = ""
    state: str = "active"


#: Meta key of the intake log's last id when a template went live (a backfill replays to it).
LIVE_FROM = "live_from:{}"


def mark_live(template_id: int) -> None:
    """Remember the intake log's end when a template goes live: events after it are processed
    live against the template, so a backfill replays only those before."""
    last = IntakeRecord.select(IntakeRecord.id).order_by(IntakeRecord.id.desc()).scalar() or 0
    set_meta(LIVE_FROM.format(template_id), last)


def audit(
    clock: Clock, action: str, target: str, detail: Any = "", actor: str = "operator"
) -> None:
    AuditLog.create(
        at=to_db(clock()), actor=actor, action=action, target=target,
        detail=detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True),
    )


class TemplateService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    # -- accounts ------------------------------------------------------------------------
    def add_account(
        self,
        provider: str,
        identifier: str,
        api_key: str,
        *,
        name: str = "",
        key_created_at: datetime | None = None,
        key_expires_at: datetime | None = None,
        api_url: str = "",
        client_id: str = "",
        client_secret: str = "",
    ) -> AccountView:
        """Store an account whose key (or OAuth client) was already verified (the accounts
        service does that); `api_url` '' means the settings' base."""
        if provider not in PROVIDERS:
            raise ServiceError(f"unknown provider {provider!r} (use credly or accredible)")
        if ProviderAccount.get_or_none(
            (ProviderAccount.provider == provider) & (ProviderAccount.identifier == identifier)
        ):
            raise ServiceError(f"{provider} account {identifier} already exists")
        now = to_db(self.clock())
        account = ProviderAccount.create(
            provider=provider, identifier=identifier, name=name or identifier, api_key=api_key,
            key_created_at=(to_db(key_created_at) or now) if api_key else None, created_at=now,
            key_expires_at=to_db(key_expires_at), api_url=api_url, client_id=client_id,
            client_secret=client_secret,
        )
        detail: dict[str, str] = {"key": mask(api_key)}
        if client_id:
            detail.update(client_id=client_id, client_secret=mask(client_secret))
        if api_url:
            detail["api_url"] = api_url
        audit(self.clock, "account.add", f"{provider}:{identifier}", detail)
        return _account_view(account)

    def accounts(self) -> list[AccountView]:
        query = ProviderAccount.select().order_by(ProviderAccount.provider, ProviderAccount.id)
        return [_account_view(a) for a in query]

    def paused_accounts(self) -> list[str]:
        return [a.name for a in ProviderAccount.select().where(ProviderAccount.paused_reason != "")]

    def account(self, ref: str | int) -> ProviderAccount:
        """An account by local id, Credly organization UUID or Accredible configuration name."""
        text = str(ref)
        if text.isdigit():
            found = ProviderAccount.get_or_none(ProviderAccount.id == int(text))
            if found:
                return found
        matches = list(ProviderAccount.select().where(
            (ProviderAccount.identifier == text) | (ProviderAccount.name == text)
        ))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ServiceError(f"account {text!r} is ambiguous; use its id")
        raise NotFound(f"no provider account {text!r}")

    # -- sync apply (the providers issue computes the plan) -----------------------------
    def upsert_synced(
        self, account: ProviderAccount, items: list[SyncedTemplate]
    ) -> dict[str, int]:
        """Create (inactive) or update templates seen at the provider; mark unseen ones stale."""
        now = to_db(self.clock())
        existing = {
            t.external_id: t
            for t in Template.select().where(Template.account == account.id).namedtuples()
        }
        # Decided row by row, written in bulk: one executemany per kind of change (a sync
        # of thousands of templates must not pay one statement round trip per row).
        creates: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        stales: list[tuple[Any, ...]] = []
        changed_active = False
        seen = set()
        for item in items:
            seen.add(item.external_id)
            row = existing.get(item.external_id)
            if row is None:
                creates.append((account.id, account.provider, item.external_id, item.name,
                                item.description, item.image_url, item.state, now, now))
                continue
            values = (item.name, item.description, item.image_url, item.state, False, False)
            if (row.name, row.description, row.image_url, row.state, row.stale,
                    row.deleted) != values:
                if row.is_active and (row.stale or row.deleted or row.state != item.state):
                    changed_active = True
                updates.append((*values, now, row.id))
        for ext, row in existing.items():
            if ext not in seen and not row.stale and not row.deleted:
                stales.append((True, now, row.id))
                changed_active = changed_active or row.is_active
        insert_rows(Template, _CREATE_FIELDS, creates)
        executemany(_UPDATE_SQL, updates)
        executemany(_STALE_SQL, stales)
        created, updated, stale = len(creates), len(updates), len(stales)
        if changed_active or updated:
            bump_config_generation()
        return {"created": created, "updated": updated, "stale": stale}

    # -- templates -----------------------------------------------------------------------
    def list(
        self,
        *,
        provider: str | None = None,
        active: bool | None = None,
        text: str | None = None,
        state: str | None = None,
    ) -> list[TemplateView]:
        reqs = (
            Requirement.select(Requirement.template, fn.COUNT(Requirement.id).alias("n"))
            .group_by(Requirement.template)
            .alias("rq")
        )
        # Per template, from the (template, status) index: a GROUP BY over every badge would
        # read them all (70-150 ms at 200,000 badges, on the console's first screen).
        awarded = (
            Badge.select(fn.COUNT(Badge.id))
            .where((Badge.template == Template.id) & (Badge.status == "awarded"))
        )
        query = (
            Template.select(
                Template, ProviderAccount.name.alias("account_name"),
                fn.COALESCE(reqs.c.n, 0).alias("req_count"),
                awarded.alias("awarded_count"),
            )
            .join(ProviderAccount)
            .switch(Template)
            .join(reqs, JOIN.LEFT_OUTER, on=(reqs.c.template_id == Template.id))
            .order_by(Template.provider, Template.name, Template.id)
        )
        if provider:
            query = query.where(Template.provider == provider)
        if active is not None:
            query = query.where(Template.is_active == active)
        if state:
            query = query.where(Template.state == state)
        if text:
            like = f"%{text}%"
            query = query.where(
                Template.name ** like | Template.external_id ** like
            )
        return [
            TemplateView(
                t.id, t.provider, t.account_id, t.account_name, t.external_id, t.name, t.state,
                t.is_active, t.stale, t.deleted, t.req_count, t.awarded_count,
            )
            for t in query.objects()
        ]

    def get(self, ref: str | int) -> Template:
        """A template by local id, or by its external id when that is unambiguous."""
        text = str(ref)
        if text.isdigit():
            found = Template.get_or_none(Template.id == int(text))
            if found:
                return found
        matches = list(Template.select().where(Template.external_id == text))
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ServiceError(f"external id {text!r} is held by several templates; use the id")
        raise NotFound(f"no template {text!r}")

    def set_expiry(self, ref: str | int, days: int | None, reaward: bool | None = None
                   ) -> Template:
        """A template's default award lifetime (None: never expires) and whether an expired
        award is awarded again; applies to awards made from now on."""
        if days is not None and not 1 <= days <= 36_500:
            raise ServiceError("the lifetime is a number of days from 1 to 36500")
        tpl = self.get(ref)
        changes: dict[str, object] = {"expires_in_days": days}
        if reaward is not None:
            changes["reaward_on_expiry"] = reaward
        Template.update(**changes, updated_at=to_db(self.clock())).where(
            Template.id == tpl.id).execute()
        bump_config_generation()  # processing's compiled templates carry the lifetime
        audit(self.clock, "template.expiry", f"template {tpl.id}",
              {"expires_in_days": days, "reaward_on_expiry": reaward})
        return Template.get_by_id(tpl.id)

    def set_active(self, ref: str | int, active: bool) -> TemplateView:
        """Activate (refused with the reason when it cannot work) or deactivate a template."""
        tpl = self.get(ref)
        if active:
            reason = activation_problem(tpl)
            if reason:
                raise ServiceError(f"template {tpl.id} ({tpl.name}) cannot be activated: {reason}")
        if tpl.is_active != active:
            Template.update(is_active=active, updated_at=to_db(self.clock())).where(
                Template.id == tpl.id
            ).execute()
            if active:
                mark_live(tpl.id)
            bump_config_generation()
            audit(self.clock, "template.activate" if active else "template.deactivate",
                  f"template {tpl.id}")
        return next(v for v in self.list() if v.id == tpl.id)


def activation_problem(tpl: Template) -> str | None:
    """Why a template may not be activated, or None."""
    if tpl.deleted:
        return "it was deleted at the provider"
    if tpl.stale:
        return "it is stale (no longer returned by the provider)"
    if tpl.provider == "credly" and tpl.state != "active":
        return f"its Credly state is {tpl.state}"
    if not Requirement.select().where(Requirement.template == tpl.id).exists():
        return "it has no requirements"
    return None


def _account_view(account: ProviderAccount) -> AccountView:
    return AccountView(
        account.id, account.provider, account.identifier, account.name, mask(account.api_key),
        iso(account.key_created_at), iso(account.last_sync_at), account.last_sync_result,
        account.paused_reason, account.api_url,
        "oauth" if account.client_id else "api key", account.client_id,
        mask(account.client_secret), iso(account.key_expires_at),
    )
