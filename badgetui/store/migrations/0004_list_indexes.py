"""Indexes for the paged, filtered lists of the console (issue 5, measured by bench/tui.py).

- badge (template_id, status, learner_id): a template's badges in a status, and counts by
  template (and status), with or without the learner joined, from the index alone.
- intake_record (username, outcome) replaces (username): a learner with an outcome from the
  index, at no extra cost per event (the intake log is the most written table).

Left out on purpose (SQLite has no statistics here, so an index is used whenever it can be):
an index leading with `complete` would be taken for `complete = ?` and every match sorted for
`ORDER BY id` (seconds on a million rows); one leading with badge `status` would replace
badge_status for any `status = ?` query and read the table in template order (5x slower).
"""
from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_index('badge', ('template_id', 'status', 'learner_id')),
        migrator.drop_index('intake_record', 'intakerecord_username'),
        migrator.add_index('intake_record', ('username', 'outcome')),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('intake_record', 'intake_record_username_outcome'),
        migrator.add_index('intake_record', ('username',), name='intakerecord_username'),
        migrator.drop_index('badge', 'badge_template_id_status_learner_id'),
    )
