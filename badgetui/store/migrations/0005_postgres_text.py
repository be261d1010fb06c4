"""PostgreSQL: text columns behave as on SQLite (any length, compared and sorted byte-wise).

- Length: the first schema declared lengths (VARCHAR(128) event ids, VARCHAR(255) usernames,
  file paths, template ids, ...). SQLite never enforces them; PostgreSQL does, so an event with
  a long id or username, or a long events file path, failed there (the batch, then the event)
  while SQLite took it. These columns become unbounded VARCHAR (PostgreSQL's TEXT).
- Collation: SQLite compares text byte by byte (BINARY); a PostgreSQL database created with a
  linguistic locale (en_US.UTF-8, ICU) sorts "alice" before "Bob" and puts "Ann" and "añn" in
  the range of usernames starting with "ann", which the learner-prefix filters rely on. These
  columns get COLLATE "C": byte order, as on SQLite. (Equality is byte-wise either way.)

Columns holding only badgetui's own words (status, kind, provider, uuid) are left alone. The
indexes on the changed columns are rebuilt by PostgreSQL. SQLite: nothing to do.
"""
from peewee import *

COLUMNS = {
    'learner': ('username', 'email', 'name'),
    'intake_record': ('event_id', 'ref_id', 'event_type', 'source', 'username'),
    'badge': ('external_id', 'award_event_id', 'revoke_event_id'),
    'fulfillment': ('event_id',),
    'template': ('external_id', 'state'),
    'provider_account': ('identifier', 'name'),
    'requirement': ('key', 'event_type'),
    'penalty': ('event_type',),
    'data_rule': ('path', 'op'),
}
#: TEXT columns that are sorted on (template names in the console's lists).
TEXT_COLUMNS = {'template': ('name',)}


def up(migrator, db):
    if not isinstance(db, PostgresqlDatabase):
        return
    for table in sorted(COLUMNS.keys() | TEXT_COLUMNS.keys()):
        changes = [f'ALTER COLUMN "{c}" TYPE VARCHAR COLLATE "C"' for c in COLUMNS.get(table, ())]
        changes += [f'ALTER COLUMN "{c}" TYPE TEXT COLLATE "C"' for c in TEXT_COLUMNS.get(table, ())]
        db.execute_sql(f'ALTER TABLE "{table}" {", ".join(changes)}')


def down(migrator, db):
    pass  # widening loses nothing; narrowing could fail on the rows stored since
