"""Peewee models: every object of semantics.md, with the constraints that keep it honest.

The database is bound at run time through `db` (a proxy), so the same models serve a SQLite
file, a PostgreSQL server and every test database. Timestamps are stored as naive UTC.
Changing a model means adding a migration under `store/migrations/`.
"""

from __future__ import annotations

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

db = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class ProviderAccount(BaseModel):
    """A Credly organization (identifier = its UUID) or an Accredible configuration (= its name)."""

    provider = CharField(max_length=16)
    identifier = CharField(max_length=255)
    name = CharField(max_length=255, default="")
    api_key = TextField()
    key_created_at = DateTimeField(null=True)
    created_at = DateTimeField()
    last_sync_at = DateTimeField(null=True)
    last_sync_result = TextField(default="")
    paused_reason = TextField(default="")
    #: This account's API base ('' = the settings' base): Accredible US or EU region (0006).
    api_url = TextField(default="")
    #: Credly OAuth 2.0 client credentials; when set they are used instead of `api_key`.
    client_id = TextField(default="")
    client_secret = TextField(default="")
    #: The key's expiry as the provider reports it (Credly authorization_tokens).
    key_expires_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("provider", "identifier"), True),)


class Template(BaseModel):
    """A Credly badge template or an Accredible group, as sync brought it in."""

    account = ForeignKeyField(ProviderAccount, backref="templates", on_delete="CASCADE")
    provider = CharField(max_length=16)
    external_id = CharField(max_length=255)
    name = TextField(default="")
    description = TextField(default="")
    image_url = TextField(default="")
    state = CharField(max_length=32, default="active")
    is_active = BooleanField(default=False)
    stale = BooleanField(default=False)
    deleted = BooleanField(default=False)
    #: Default lifetime of an award in days (None: awards never expire).
    expires_in_days = IntegerField(null=True)
    reaward_on_expiry = BooleanField(default=False)
    created_at = DateTimeField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("provider", "account", "external_id"), True),)


class Requirement(BaseModel):
    template = ForeignKeyField(Template, backref="requirements", on_delete="CASCADE")
    key = CharField(max_length=64)
    event_type = CharField(max_length=255)
    group = CharField(max_length=1)
    description = TextField(default="")
    position = IntegerField(default=0)

    class Meta:
        indexes = ((("template", "key"), True),)


class Penalty(BaseModel):
    template = ForeignKeyField(Template, backref="penalties", on_delete="CASCADE")
    event_type = CharField(max_length=255)
    description = TextField(default="")
    position = IntegerField(default=0)


class PenaltyRequirement(BaseModel):
    """Which requirements a penalty resets (always of the penalty's own template)."""

    penalty = ForeignKeyField(Penalty, backref="links", on_delete="CASCADE")
    requirement = ForeignKeyField(Requirement, backref="penalty_links", on_delete="CASCADE")

    class Meta:
        indexes = ((("penalty", "requirement"), True),)


class DataRule(BaseModel):
    """A rule of a requirement or of a penalty (exactly one of the two is set)."""

    requirement = ForeignKeyField(Requirement, null=True, backref="rules", on_delete="CASCADE")
    penalty = ForeignKeyField(Penalty, null=True, backref="rules", on_delete="CASCADE")
    path = CharField(max_length=255)
    op = CharField(max_length=8)
    value = TextField()
    position = IntegerField(default=0)


class Learner(BaseModel):
    username = CharField(max_length=255, unique=True)
    email = CharField(max_length=255, default="")
    name = CharField(max_length=255, default="")
    lms_id = BigIntegerField(null=True)
    is_active = BooleanField(default=True)
    updated_at = DateTimeField()


class Badge(BaseModel):
    """One award; a re-award after a revocation is a new row. `evidence` answers "why"."""

    uuid = CharField(max_length=36, unique=True)
    learner = ForeignKeyField(Learner, backref="badges", on_delete="CASCADE")
    template = ForeignKeyField(Template, backref="badges", on_delete="CASCADE")
    status = CharField(max_length=16, index=True)
    provider_state = CharField(max_length=16, index=True)
    external_id = CharField(max_length=64, null=True)
    last_error = TextField(default="")
    awarded_at = DateTimeField()
    award_event_id = CharField(max_length=128)
    revoked_at = DateTimeField(null=True)
    revoke_event_id = CharField(max_length=128, null=True)
    revoke_reason = TextField(default="")
    evidence = TextField(default="")
    updated_at = DateTimeField()
    #: Provider-side expiry date (Accredible `expired_on`, YYYY-MM-DD); future = still live.
    provider_expires_on = CharField(max_length=10, null=True)
    #: When this award expires (operator's expiry or the template default), None: never.
    expires_at = DateTimeField(null=True, index=True)

    class Meta:
        # A template's badges in a status; counts by template (and status) from the index (0004).
        indexes = ((("template", "status", "learner"), False),)


# At most one held (awarded) badge per learner and template, whatever the number of processes.
Badge.add_index(
    Badge.index(Badge.learner, Badge.template, unique=True, where=(Badge.status == "awarded"))
)


class Progress(BaseModel):
    """One row per (learner, template); `badge` points at the badge the learner holds."""

    learner = ForeignKeyField(Learner, backref="progress", on_delete="CASCADE")
    template = ForeignKeyField(Template, backref="progress", on_delete="CASCADE")
    fulfilled_groups = IntegerField(default=0)
    complete = BooleanField(default=False)
    badge = ForeignKeyField(Badge, null=True, on_delete="SET NULL")
    updated_at = DateTimeField()

    class Meta:
        # Lists read progress in id order (stable while it changes). Nothing leads with
        # `complete`: see migration 0004.
        indexes = ((("learner", "template"), True), (("template", "updated_at"), False))


class Fulfillment(BaseModel):
    """A requirement fulfilled for one learner, by one event."""

    progress = ForeignKeyField(Progress, backref="fulfillments", on_delete="CASCADE")
    requirement = ForeignKeyField(Requirement, backref="fulfillments", on_delete="CASCADE")
    event_id = CharField(max_length=128)
    event_time = DateTimeField()
    fulfilled_at = DateTimeField()

    class Meta:
        indexes = ((("progress", "requirement"), True),)


class IntakeRecord(BaseModel):
    """The intake log. `event_id` is claimed (unique) by the record that processed the event;
    `ref_id` holds the id as seen on every record, duplicates included."""

    event_id = CharField(max_length=128, null=True, unique=True)
    ref_id = CharField(max_length=128, null=True, index=True)
    event_type = CharField(max_length=255, null=True)
    outcome = CharField(max_length=16, index=True)
    reason = TextField(default="")
    source = CharField(max_length=255, default="")
    line = IntegerField(null=True)
    username = CharField(max_length=255, null=True)  # indexed with the outcome
    event_time = DateTimeField(null=True)
    received_at = DateTimeField()
    payload = TextField(null=True)
    effects = TextField(default="")

    class Meta:
        # A learner's records, with an outcome or not (0004: replaced the username index).
        indexes = ((("username", "outcome"), False),)


class DeliveryJob(BaseModel):
    """A durable issue or revoke call to a provider."""

    badge = ForeignKeyField(Badge, backref="jobs", on_delete="CASCADE")
    account = ForeignKeyField(ProviderAccount, backref="jobs", on_delete="CASCADE")
    kind = CharField(max_length=8)
    state = CharField(max_length=16)
    attempts = IntegerField(default=0)
    next_attempt_at = DateTimeField()
    last_error = TextField(default="")
    created_at = DateTimeField()
    updated_at = DateTimeField()
    # Set while a worker holds the job; a job still "running" past it belongs to a dead worker.
    lease_until = DateTimeField(null=True)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),)


class OutgoingEvent(BaseModel):
    """Transactional outbox of badge.awarded / badge.revoked events."""

    uuid = CharField(max_length=36, unique=True)
    event_type = CharField(max_length=255)
    badge = ForeignKeyField(Badge, null=True, backref="outgoing", on_delete="SET NULL")
    payload = TextField()
    time = DateTimeField()
    published_at = DateTimeField(null=True, index=True)


class AuditLog(BaseModel):
    """Operator changes: activation, configuration imports, provider accounts."""

    at = DateTimeField(index=True)
    actor = CharField(max_length=64)
    action = CharField(max_length=64)
    target = TextField(default="")
    detail = TextField(default="")


MODELS: list[type[BaseModel]] = [
    ProviderAccount,
    Template,
    Requirement,
    Penalty,
    PenaltyRequirement,
    DataRule,
    Learner,
    Badge,
    Progress,
    Fulfillment,
    IntakeRecord,
    DeliveryJob,
    OutgoingEvent,
    AuditLog,
]


class ConfigBackup(BaseModel):
    """A configuration export written before a sync removes anything (migration 0002)."""

    created_at = DateTimeField(index=True)
    account = ForeignKeyField(ProviderAccount, null=True, on_delete="SET NULL")
    reason = TextField(default="")
    content = TextField()


class Meta(BaseModel):
    """Counters shared by every process, e.g. the configuration generation the matcher caches."""

    key = CharField(max_length=64, primary_key=True)
    value = BigIntegerField(default=0)


MODELS.extend([ConfigBackup, Meta])
