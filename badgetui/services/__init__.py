"""Use cases. The CLI, the TUI and the tests reach the store and the providers only through here.

`Services.open(settings)` binds the database and wires every service with one clock and one
httpx transport, so tests inject time and the emulator and nothing reads the wall clock or the
network behind their back.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from peewee import Database

from badgetui.services.accounts import AccountService, Connections
from badgetui.services.awards import AwardService
from badgetui.services.backfill import BackfillService
from badgetui.services.badge_actions import BadgeActions
from badgetui.services.bulk_actions import BulkActions
from badgetui.services.common import Clock, utc_now
from badgetui.services.config_io import ConfigService
from badgetui.services.delivery import DeliveryService
from badgetui.services.editor import EditorService
from badgetui.services.intake import IntakeService
from badgetui.services.migrate import MigrationService
from badgetui.services.processing import Processor
from badgetui.services.reconcile import ReconcileService
from badgetui.services.retire import RetireService
from badgetui.services.sync import SyncService
from badgetui.services.templates import TemplateService
from badgetui.services.webhooks import WebhookService
from badgetui.settings import Settings
from badgetui.store.database import open_database


def database_label(url: str) -> str:
    """The database as it may be shown: no password."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


@dataclass(slots=True)
class Services:
    settings: Settings
    database: Database
    clock: Clock
    connections: Connections
    processor: Processor
    intake: IntakeService
    templates: TemplateService
    config: ConfigService
    accounts: AccountService
    sync: SyncService
    delivery: DeliveryService
    webhooks: WebhookService
    editor: EditorService
    badges: BadgeActions
    reconcile: ReconcileService
    migrate: MigrationService
    awards: AwardService
    backfill: BackfillService
    bulk: BulkActions
    retire: RetireService

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Services:
        database = open_database(settings.db)
        processor = Processor(clock, reaward_after_revoke=settings.reaward_after_revoke)
        connections = Connections(settings, transport, clock=clock)
        templates = TemplateService(clock)
        config = ConfigService(clock, settings.events, settings.ignored_paths)
        accounts = AccountService(clock, connections, templates)
        badges = BadgeActions(clock)
        return cls(
            settings=settings,
            database=database,
            clock=clock,
            connections=connections,
            processor=processor,
            intake=IntakeService(processor, settings.events, clock, settings.batch_size),
            templates=templates,
            config=config,
            accounts=accounts,
            sync=SyncService(clock, connections, templates, accounts, config),
            delivery=DeliveryService(clock, connections, settings),
            webhooks=WebhookService(clock, connections),
            editor=EditorService(clock, config, sandbox=settings.use_sandbox),
            badges=badges,
            reconcile=ReconcileService(clock, connections, templates),
            migrate=MigrationService(clock, config, badges),
            awards=AwardService(clock),
            backfill=BackfillService(clock, processor, templates),
            bulk=BulkActions(clock, badges),
            retire=RetireService(clock),
        )

    def status(self) -> dict[str, object]:
        """What the status line shows: queue depth, failures, key warnings, database."""
        from badgetui.services.queries import delivery_counts

        counts = delivery_counts()
        return {
            "queued": counts.get("queued", 0) + counts.get("running", 0),
            "failed": counts.get("failed", 0),
            "paused": self.templates.paused_accounts(),
            "warnings": [k.warning for k in self.accounts.key_status() if k.warning],
            "database": database_label(self.settings.db),
        }

    def close(self) -> None:
        if not self.database.is_closed():
            self.database.close()
