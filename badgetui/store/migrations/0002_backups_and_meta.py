"""Configuration backups (written before a sync removes requirements) and shared counters."""
from peewee import *


def up(migrator, db):
    class ProviderAccount(Model):
        class Meta:
            database = db
            table_name = 'provider_account'

    class ConfigBackup(Model):
        created_at = DateTimeField(index=True)
        account = ForeignKeyField(ProviderAccount, null=True, on_delete='SET NULL')
        reason = TextField(default='')
        content = TextField()

        class Meta:
            database = db
            table_name = 'config_backup'

    class Meta_(Model):
        key = CharField(max_length=64, primary_key=True)
        value = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = 'meta'

    db.create_tables([ConfigBackup, Meta_])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('meta'))
    migrator.migrate(migrator.drop_table('config_backup'))
