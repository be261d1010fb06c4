"""Delivery leases: a worker killed mid-call leaves jobs that another worker can take over."""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('delivery_job', 'lease_until', DateTimeField(null=True)),
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column('delivery_job', 'lease_until'))
