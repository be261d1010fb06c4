"""Use cases. The CLI, the TUI and the tests reach the store and the providers only through here.

`Services.open(settings)` binds the database and wires every service with one clock, so tests
inject time and nothing reads the wall clock behind their back.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import Database

from badgetui.services.common import Clock, utc_now
from badgetui.services.config_io import ConfigService
from badgetui.services.intake import IntakeService
from badgetui.services.processing import Processor
from badgetui.services.templates import TemplateService
from badgetui.settings import Settings
from badgetui.store.database import open_database


@dataclass(slots=True)
class Services:
    settings: Settings
    database: Database
    clock: Clock
    processor: Processor
    intake: IntakeService
    templates: TemplateService
    config: ConfigService

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock = utc_now) -> Services:
        database = open_database(settings.db)
        processor = Processor(clock, reaward_after_revoke=settings.reaward_after_revoke)
        return cls(
            settings=settings,
            database=database,
            clock=clock,
            processor=processor,
            intake=IntakeService(processor, settings.events, clock, settings.batch_size),
            templates=TemplateService(clock),
            config=ConfigService(clock, settings.events, settings.ignored_paths),
        )

    def close(self) -> None:
        if not self.database.is_closed():
            self.database.close()
