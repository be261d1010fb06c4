"""Provider access as the real APIs need it (issue 10).

- provider_account.api_url: each account's own API base (Accredible US or EU region, or any
  URL given at `provider add`); '' means the base from the settings.
- provider_account.client_id / client_secret: Credly OAuth 2.0 client credentials, used
  instead of the organization token when set.
- provider_account.key_expires_at: the key's own expiry as the provider reports it
  (Credly `authorization_tokens[].expires_at`), instead of an assumed lifetime.
- badge.provider_expires_on: the provider-side expiry (Accredible `expired_on`, auto_expiry
  included); a future date is a live credential.
"""
from peewee import *

#: Plain ADD COLUMN with its default, on both databases: Peewee's migrator adds NOT NULL on
#: SQLite by rebuilding the table, and inside the migration transaction the foreign keys stay
#: on, so dropping the old provider_account would cascade to its templates.
COLUMNS = (
    ('provider_account', 'api_url', "TEXT NOT NULL DEFAULT ''"),
    ('provider_account', 'client_id', "TEXT NOT NULL DEFAULT ''"),
    ('provider_account', 'client_secret', "TEXT NOT NULL DEFAULT ''"),
    ('provider_account', 'key_expires_at', 'TIMESTAMP NULL'),
    ('badge', 'provider_expires_on', 'VARCHAR(10) NULL'),
)


def up(migrator, db):
    for table, column, definition in COLUMNS:
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {definition}')


def down(migrator, db):
    migrator.migrate(*[migrator.drop_column(table, column) for table, column, _ in COLUMNS])
