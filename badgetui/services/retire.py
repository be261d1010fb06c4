"""Learner erase for GDPR and the Open edX user retirement pipeline.

`RetireService.retire(username)` replaces a learner's username and personal data everywhere
badgetui keeps them, in one transaction, and deletes nothing:

- `learner`: username -> a stable pseudonym (`retired__` + the first 16 hex digits of the
  username's SHA-256; `_2`, `_3`, ... when a learner of the same username was retired before),
  email and name -> "". The LMS id is kept: Open edX retires a user by scrubbing its `auth_user`
  row, not by deleting it, so the id afterwards names a pseudonymous LMS account; it is not
  personal data on its own, and keeping it keeps the learner's history joinable with the LMS's
  own retired records (and `badge.awarded` payloads consistent with `user.id`).
- `intake_record`: the learner's records (username column -> the pseudonym), and rejected
  records with no username whose raw line quotes the learner (found by the username or an
  email, then checked token by token); their `payload` (the parsed event, or the raw line of a
  rejected one: there is no separate `raw` column), `reason` and `effects`.
- `outgoing_event` (badge.awarded / badge.revoked payloads, user pii), `badge` (`evidence` JSON,
  `revoke_reason`, `last_error`), `delivery_job.last_error`, and `audit_log` rows that name the
  learner or target one of their badges.

Where a text is JSON its structure is used: a value equal to the username becomes the
pseudonym, one equal to an email or the name becomes "", every `pii` record of the learner is
blanked whatever its (older) email and name were, and other values are left whole, except
free-text fields (`reason`, `evidence`, ...) where the learner is replaced as a token. Elsewhere
(and in raw lines that are not JSON) the replacement is plain, token by token: `ann` is
replaced in "revoked for ann." but not inside "joanna" or "ann.smith". Emails and names found
in the learner's own events are erased too (the learner row holds only the latest).

Counts stay true: no row is deleted, so progress, badges, the intake log and every total keep
their numbers; badges and progress simply belong to the pseudonymous learner. Event ids are
kept (deduplication needs them). A second run finds nothing to change and says so; it still
erases what arrived for the old username since (a replayed event is recorded as a duplicate
that quotes the learner). One `learner.retire` audit row names only the pseudonym.

After retirement the old username is free: a new event for it creates a NEW learner (with
whatever that event carries), as a first event would; retiring it again gives it the next
pseudonym. The pseudonym is a hash, not a secret: whoever knows the old username can tell
which row was theirs, which is what lets a repeated retirement find it.

Scope: badgetui's own tables. It does not reach the providers (Credly and Accredible keep the
badges they issued, with the recipient's name and email: revoke or delete them there), cannot
recall outgoing events already published to the event bus, and does not touch other systems.
Open edX's own retirement pipeline misses the Credentials service's badge progress table
(`badges_badgeprogress` keeps usernames), so a site migrated from Credentials should scrub that
database separately.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import reduce
from operator import or_
from typing import Any

from badgetui.services.common import (
    Clock,
    NotFound,
    ServiceError,
    chunked,
    executemany,
    in_transaction,
    is_postgres,
    to_db,
)
from badgetui.services.templates import audit
from badgetui.store.models import (
    AuditLog,
    Badge,
    DeliveryJob,
    IntakeRecord,
    Learner,
    OutgoingEvent,
)

PSEUDONYM_PREFIX = "retired__"
_PSEUDONYM = re.compile(r"retired__[0-9a-f]{16}(?:_[0-9]+)?")
#: What a name or an email becomes inside free text (a JSON value becomes "").
ERASED = "[erased]"
#: JSON keys whose string values are free text: the learner is replaced inside them as a token.
FREE_TEXT_KEYS = frozenset({"reason", "evidence", "detail", "note", "message", "error", "why"})
#: Characters a username or an email is made of: a match must not touch one of them.
_TOKEN_CHAR = r"[\w.@+-]"
_BEFORE = rf"(?<!{_TOKEN_CHAR})"
_AFTER = r"(?![\w@+-]|\.\w)"
#: Shortest cut-off tail of an email or name that is still erased (see `_cut_tail`).
MIN_TAIL = 4
CHUNK = 500
RETIRE_ACTION = "learner.retire"
TABLES = tuple(m._meta.table_name for m in
               (Learner, IntakeRecord, OutgoingEvent, Badge, DeliveryJob, AuditLog))


def pseudonym(username: str, n: int = 1) -> str:
    """The stable pseudonym of a username (the n-th learner of that name retired)."""
    digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{PSEUDONYM_PREFIX}{digest}" + (f"_{n}" if n > 1 else "")


def is_pseudonym(username: str) -> bool:
    return _PSEUDONYM.fullmatch(username) is not None


@dataclass(slots=True)
class RetireReport:
    """What a retirement changed (or, with `dry_run`, would change), rows per table."""

    pseudonym: str
    status: str  # "retired" | "already retired"
    dry_run: bool
    changed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    #: Issue deliveries of the learner still to run: they would reach the provider without an
    #: email (cancel or revoke those badges).
    pending_issues: int = 0

    @property
    def total(self) -> int:
        return sum(self.changed.values())

    def as_dict(self) -> dict[str, Any]:
        return {"pseudonym": self.pseudonym, "status": self.status, "dry_run": self.dry_run,
                "changed": dict(self.changed), "total": self.total,
                "pending_issues": self.pending_issues}


class _DryRun(Exception):
    """Not an error: how a dry run rolls its work back, carrying the report out."""

    def __init__(self, report: RetireReport) -> None:
        super().__init__("dry run")
        self.report = report


class Identity:
    """The learner's identifiers and how texts lose them (see the module docstring)."""

    def __init__(self, username: str, pseudonym: str, emails: Iterable[str] = (),
                 names: Iterable[str] = ()) -> None:
        self.username = username
        self.pseudonym = pseudonym
        self.emails: set[str] = set()
        self.names: set[str] = set()
        self._compiled: tuple[re.Pattern[str], re.Pattern[str]] | None = None
        for email in emails:
            self.learn(email=email)
        for name in names:
            self.learn(name=name)

    def learn(self, email: Any = None, name: Any = None) -> bool:
        """Add an email or name of the learner; True when it was not known."""
        grew = False
        if isinstance(email, str) and email.strip() and email.casefold() not in self.emails:
            self.emails.add(email.casefold())
            grew = True
        if isinstance(name, str) and name.strip() and name not in self.names:
            self.names.add(name)
            grew = True
        if grew:
            self._compiled = None
        return grew

    @property
    def size(self) -> int:
        return len(self.emails) + len(self.names)

    def needles(self, *, names: bool = False) -> list[str]:
        """Substrings whose presence makes a row a candidate (then checked by `mentions`)."""
        values = [self.username, *self.emails, *(self.names if names else ())]
        return sorted({form for v in values for form in _forms(v)})

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str]]:
        """(who: username and emails; all: and the names), as tokens."""
        if self._compiled is None:
            def alternation(values: Iterable[str]) -> str:
                forms = sorted({f for v in values for f in _forms(v)}, key=lambda s: -len(s))
                return "|".join(re.escape(f) for f in forms)

            who = alternation([self.username])
            if self.emails:
                who = f"{who}|(?i:{alternation(self.emails)})"
            every = who if not self.names else f"{who}|{alternation(self.names)}"
            self._compiled = (re.compile(f"{_BEFORE}(?:{who}){_AFTER}"),
                              re.compile(f"{_BEFORE}(?:{every}){_AFTER}"))
        return self._compiled

    def mentions(self, text: str | None) -> bool:
        """The text names the learner by username or email (a name alone is not enough: other
        people share it)."""
        return bool(text) and self._patterns()[0].search(text) is not None

    def _replacement(self, match: re.Match[str]) -> str:
        found = match.group(0)
        if found in _forms(self.username):
            return self.pseudonym
        return ERASED

    def text(self, text: str | None) -> str | None:
        """Plain text with the learner replaced token by token."""
        if not text:
            return text
        return self._patterns()[1].sub(self._replacement, text)

    def value(self, value: Any, key: Any = None) -> Any:
        """A decoded JSON value with the learner's values replaced (see the module docstring)."""
        if isinstance(value, dict):
            pii = value.get("pii")
            mine = isinstance(pii, dict) and pii.get("username") in (self.username,
                                                                     self.pseudonym)
            if mine and pii.get("username") == self.username:
                self.learn(email=pii.get("email"), name=pii.get("name"))
            out = {k: self.value(v, k) for k, v in value.items()}
            if mine:
                out["pii"] = {**out["pii"], **{k: "" for k in ("email", "name") if k in pii}}
            return out
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            if value == self.username:
                return self.pseudonym
            if value.casefold() in self.emails or value in self.names:
                return ""
            if key in FREE_TEXT_KEYS:
                return self.text(value)
        return value

    def stored(self, text: str | None) -> str | None:
        """A stored text: by its JSON structure when it is a JSON object or array, else plain."""
        if not text:
            return text
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            decoded = None
        if not isinstance(decoded, dict | list):
            return self._cut_tail(self.text(text))
        scrubbed = self.value(decoded)
        return text if scrubbed == decoded else json.dumps(scrubbed)

    def _cut_tail(self, text: str) -> str:
        """A text cut short (a rejected line is kept to 2,000 characters) may end inside the
        learner's email or name: such a tail (of at least MIN_TAIL characters) goes too."""
        values = [(f, False) for v in (self.username, *self.names) for f in _forms(v)]
        values += [(f, True) for v in self.emails for f in _forms(v)]
        for value, fold in values:
            for size in range(min(len(value) - 1, len(text)), MIN_TAIL - 1, -1):
                tail = text[-size:]
                if (tail.casefold() if fold else tail) == value[:size] and not re.search(
                        _TOKEN_CHAR + r"\Z", text[:-size]):
                    return text[:-size] + ERASED
        return text


def _forms(value: str) -> tuple[str, ...]:
    """A value as written and as JSON escapes it (`ensure_ascii`, how payloads are stored)."""
    escaped = json.dumps(value)[1:-1]
    return (value,) if escaped == value else (value, escaped)


class RetireService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def retire(self, username: str, dry_run: bool = False, actor: str = "operator"
               ) -> RetireReport:
        """Erase a learner (see the module docstring). Raises NotFound for a username badgetui
        never knew; an already retired one is reported with what was still left to erase."""
        if not username:
            raise ServiceError("a username is needed")
        try:
            return in_transaction(lambda: self._retire(username, dry_run, actor))
        except _DryRun as done:
            return done.report

    # -- the transaction -----------------------------------------------------------------
    def _retire(self, username: str, dry_run: bool, actor: str) -> RetireReport:
        now = to_db(self.clock())
        learner = _lock_learner(username)
        if learner is not None and is_pseudonym(username):
            # The operator named the pseudonym itself: nothing of the old name is left to find.
            return RetireReport(username, "already retired", dry_run)
        taken = _pseudonyms_taken(username)
        if learner is None:
            if not taken:
                raise NotFound(f"no learner {username!r} (nothing to retire)")
            status, alias = "already retired", pseudonym(username)
            owner = Learner.get_or_none(Learner.username == alias)
            ident = Identity(username, alias)
        else:
            n = 1
            while pseudonym(username, n) in taken:
                n += 1
            status, alias, owner = "retired", pseudonym(username, n), learner
            ident = Identity(username, alias, [learner.email], [learner.name])

        badges = _badges(owner.id) if owner is not None else {}
        changed: dict[str, set[int]] = {t: set() for t in TABLES}
        intake_ids = [i for (i,) in IntakeRecord.select(IntakeRecord.id).where(
            IntakeRecord.username == username).order_by(IntakeRecord.id).tuples()]
        # Until no new email or name turns up in the learner's events (once, unless the learner
        # changed them over time): texts already rewritten are rewritten again only if needed.
        for _ in range(4):
            size = ident.size
            self._outgoing(ident, badges, changed)
            self._intake(ident, intake_ids, changed)
            self._badges(ident, badges, changed)
            self._jobs(ident, badges, changed)
            self._audit(ident, badges, changed)
            if ident.size == size:
                break
        if learner is not None:
            Learner.update(username=alias, email="", name="", updated_at=now).where(
                Learner.id == learner.id).execute()
            changed[Learner._meta.table_name].add(learner.id)

        report = RetireReport(alias, status, dry_run,
                              {t: len(ids) for t, ids in changed.items()})
        report.pending_issues = _pending_issues(list(badges))
        if report.total:
            audit(self.clock, RETIRE_ACTION, alias,
                  {"status": status, "changed": {t: n for t, n in report.changed.items() if n}},
                  actor=actor)
        if dry_run:
            raise _DryRun(report)
        return report

    # -- one table each ------------------------------------------------------------------
    def _intake(self, ident: Identity, owned_ids: list[int],
                changed: dict[str, set[int]]) -> None:
        """The learner's records, and rejected records without a username that quote them."""
        candidates = [i for (i,) in IntakeRecord.select(IntakeRecord.id).where(
            IntakeRecord.username.is_null() & (IntakeRecord.outcome == "rejected")
            & _any_contains([IntakeRecord.payload, IntakeRecord.reason], ident.needles())
        ).order_by(IntakeRecord.id).tuples()]
        owned = set(owned_ids)
        updates: list[tuple[Any, ...]] = []
        fields = (IntakeRecord.id, IntakeRecord.username, IntakeRecord.payload,
                  IntakeRecord.reason, IntakeRecord.effects)
        for chunk in chunked(sorted(owned | set(candidates)), CHUNK):
            rows = IntakeRecord.select(*fields).where(IntakeRecord.id.in_(list(chunk))).tuples()
            for rid, user, payload, reason, effects in rows:
                if rid not in owned and not (ident.mentions(payload) or ident.mentions(reason)):
                    continue
                new = (ident.pseudonym if rid in owned else user, ident.stored(payload),
                       ident.text(reason), ident.text(effects))
                if new != (user, payload, reason, effects):
                    updates.append((*new, rid))
                    changed[IntakeRecord._meta.table_name].add(rid)
            _flush(updates, "UPDATE intake_record SET username = ?, payload = ?, reason = ?, "
                            "effects = ? WHERE id = ?")

    def _outgoing(self, ident: Identity, badges: dict[int, str],
                  changed: dict[str, set[int]]) -> None:
        """Outbox events of the learner's badges, and orphaned ones (their badge's template
        was deleted) whose payload is the learner's."""
        select = OutgoingEvent.select(OutgoingEvent.id, OutgoingEvent.payload)
        rows: list[tuple[int, str, bool]] = []
        for chunk in chunked(sorted(badges), CHUNK):
            rows += [(i, p, True) for i, p in
                     select.where(OutgoingEvent.badge.in_(list(chunk))).tuples()]
        rows += [(i, p, False) for i, p in select.where(
            OutgoingEvent.badge.is_null()
            & _any_contains([OutgoingEvent.payload], ident.needles())).tuples()]
        self._rewrite(rows, ident, changed, OutgoingEvent,
                      lambda payload: (ident.stored(payload),),
                      "UPDATE outgoing_event SET payload = ? WHERE id = ?")

    def _badges(self, ident: Identity, badges: dict[int, str],
                changed: dict[str, set[int]]) -> None:
        fields = (Badge.id, Badge.evidence, Badge.revoke_reason, Badge.last_error)
        updates: list[tuple[Any, ...]] = []
        for chunk in chunked(sorted(badges), CHUNK):
            for bid, evidence, reason, error in Badge.select(*fields).where(
                    Badge.id.in_(list(chunk))).tuples():
                new = (ident.stored(evidence), ident.text(reason), ident.text(error))
                if new != (evidence, reason, error):
                    updates.append((*new, bid))
                    changed[Badge._meta.table_name].add(bid)
        _flush(updates, "UPDATE badge SET evidence = ?, revoke_reason = ?, last_error = ? "
                        "WHERE id = ?")

    def _jobs(self, ident: Identity, badges: dict[int, str],
              changed: dict[str, set[int]]) -> None:
        rows: list[tuple[int, str, bool]] = []
        for chunk in chunked(sorted(badges), CHUNK):
            rows += [(i, e, True) for i, e in DeliveryJob.select(
                DeliveryJob.id, DeliveryJob.last_error).where(
                DeliveryJob.badge.in_(list(chunk)) & (DeliveryJob.last_error != "")).tuples()]
        self._rewrite(rows, ident, changed, DeliveryJob, lambda error: (ident.text(error),),
                      "UPDATE delivery_job SET last_error = ? WHERE id = ?")

    def _audit(self, ident: Identity, badges: dict[int, str],
               changed: dict[str, set[int]]) -> None:
        """Entries that name the learner, or act on one of their badges (whose reasons may name
        them in other words: by name)."""
        refs = {*badges.values(), *(f"badge {bid}" for bid in badges)}
        needles = ident.needles(names=True)
        query = AuditLog.select(AuditLog.id, AuditLog.target, AuditLog.detail).where(
            AuditLog.action != RETIRE_ACTION)
        found = {row[0]: row for row in query.where(
            _any_contains([AuditLog.target, AuditLog.detail], needles)).tuples()}
        for chunk in chunked(sorted(refs), CHUNK):
            found.update((row[0], row) for row in query.where(
                AuditLog.target.in_(list(chunk))).tuples())
        updates: list[tuple[Any, ...]] = []
        for aid, target, detail in sorted(found.values()):
            if not (target in refs or ident.mentions(target) or ident.mentions(detail)):
                continue
            new = (ident.text(target), ident.stored(detail))
            if new != (target, detail):
                updates.append((*new, aid))
                changed[AuditLog._meta.table_name].add(aid)
        _flush(updates, "UPDATE audit_log SET target = ?, detail = ? WHERE id = ?")

    @staticmethod
    def _rewrite(rows: list[tuple[int, str, bool]], ident: Identity,
                 changed: dict[str, set[int]], model: Any,
                 rewrite: Callable[[str], tuple[Any, ...]], sql: str) -> None:
        """Rows of (id, text, owned): owned ones, and others that name the learner, rewritten."""
        updates: list[tuple[Any, ...]] = []
        for rid, text, owned in rows:
            if not owned and not ident.mentions(text):
                continue
            new = rewrite(text)
            if new != (text,):
                updates.append((*new, rid))
                changed[model._meta.table_name].add(rid)
        _flush(updates, sql)


def _flush(updates: list[tuple[Any, ...]], sql: str) -> None:
    executemany(sql, updates)
    updates.clear()


def _lock_learner(username: str) -> Any:
    """The learner of this name; on PostgreSQL locked until the transaction ends, so intake of
    their events waits (processing locks learners the same way) and sees the result."""
    query = Learner.select().where(Learner.username == username)
    if is_postgres():
        query = query.for_update()
    return query.first()


def _pseudonyms_taken(username: str) -> set[str]:
    base = pseudonym(username)
    names = Learner.select(Learner.username).where(Learner.username.startswith(base)).tuples()
    return {n for (n,) in names if n == base or re.fullmatch(re.escape(base) + r"_[0-9]+", n)}


def _badges(learner_id: int) -> dict[int, str]:
    """The learner's badges: id -> uuid (how audit entries name them)."""
    return dict(Badge.select(Badge.id, Badge.uuid).where(Badge.learner == learner_id).tuples())


def _pending_issues(badge_ids: list[int]) -> int:
    total = 0
    for chunk in chunked(sorted(badge_ids), CHUNK):
        total += DeliveryJob.select().where(
            DeliveryJob.badge.in_(list(chunk)) & (DeliveryJob.kind == "issue")
            & DeliveryJob.state.in_(["queued", "running", "failed"])).count()
    return total


def _any_contains(columns: list[Any], needles: list[str]) -> Any:
    """SQL: one of the columns contains one of the needles (case-insensitive, wildcards
    escaped); a pre-filter, the rows are checked token by token afterwards."""
    return reduce(or_, [column.contains(n) for column in columns for n in needles])


__all__ = ["Identity", "RetireReport", "RetireService", "is_pseudonym", "pseudonym"]
