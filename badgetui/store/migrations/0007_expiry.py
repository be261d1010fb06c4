"""Expiry of awards (issue 13).

- badge.expires_at: when this award expires (an operator's per-award expiry, or the template's
  default at award time); sent to Credly as `expires_at`, to Accredible as `expired_on`.
- template.expires_in_days: the template's default lifetime of an award (NULL: never expires).
- template.reaward_on_expiry: award again, as a new badge, when an award expires.
"""
from peewee import *

COLUMNS = (
    ('badge', 'expires_at', 'TIMESTAMP NULL'),
    ('template', 'expires_in_days', 'INTEGER NULL'),
    ('template', 'reaward_on_expiry', 'BOOLEAN NOT NULL DEFAULT FALSE'),
)


def up(migrator, db):
    for table, column, definition in COLUMNS:
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}')
    db.execute_sql('CREATE INDEX "badge_expires_at" ON "badge" ("expires_at")')


def down(migrator, db):
    db.execute_sql('DROP INDEX "badge_expires_at"')
    migrator.migrate(*[migrator.drop_column(table, column) for table, column, _ in COLUMNS])
