"""Operator awards: one by hand, or many from a CSV file, through the same delivery queue.

Why they look as they do:
- An operator award is a badge like any other (a `badge.awarded` outgoing event, an issue job,
  the learner's progress row pointing at it), and its "why" says who awarded it and why, with
  the evidence given; the learner's progress is not touched otherwise.
- A bulk file is validated row by row: a bad row is one line (`FILE:LINE: rejected: reason`)
  and the rest goes on; a learner who already holds the badge is skipped, so re-running a file
  after a kill picks up where it stopped and never awards twice. Rows are written in chunks,
  each in one transaction (a kill loses at most the chunk in hand, which the re-run redoes).
- The preview (dry run) runs the same validation and says what each row would do.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from badgetui.domain.events import BADGE_AWARDED
from badgetui.domain.rules import as_moment
from badgetui.services.common import (
    Clock,
    ServiceError,
    current_database,
    is_postgres,
    iso,
    to_db,
)
from badgetui.services.processing import badge_payload
from badgetui.services.templates import activation_problem, audit
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    Learner,
    OutgoingEvent,
    Progress,
    ProviderAccount,
    Template,
)

#: The columns of a bulk award file (formats: CSV with a header; only `username` and
#: `template` are required, `email` too for a learner badgetui has not seen yet).
COLUMNS = ("username", "email", "name", "template", "evidence", "expiry")
CHUNK = 200
MAX_TEXT = 2000


@dataclass(slots=True)
class AwardRow:
    """One award to make: a CSV row or a single award by hand."""

    username: str
    template: str
    email: str = ""
    name: str = ""
    evidence: str = ""
    expiry: str = ""
    line: int | None = None
    #: What the file reader found wrong with the row itself.
    problem: str = ""


@dataclass(slots=True)
class RowOutcome:
    line: int | None
    username: str
    template: str
    outcome: str  # "awarded" (or "would award"), "skipped", "rejected"
    detail: str = ""
    badge_id: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.outcome}: {self.username} / {self.template}" + (
            f": {self.detail}" if self.detail else "")


@dataclass(slots=True)
class AwardReport:
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)
    rows: list[RowOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "counts": dict(self.counts),
                "rows": [{"line": r.line, "username": r.username, "template": r.template,
                          "outcome": r.outcome, "detail": r.detail, "badge_id": r.badge_id}
                         for r in self.rows]}


@dataclass(slots=True)
class _Checked:
    row: AwardRow
    template: Template | None
    learner: Learner | None
    expires_at: datetime | None
    problem: str = ""
    skip: str = ""


def read_award_file(text: str) -> Iterator[AwardRow]:
    """Rows of a bulk award CSV (header required; column order free; extra columns refused)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ServiceError("the file is empty (a header line names the columns: "
                           + ",".join(COLUMNS) + ")")
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [n for n in ("username", "template") if n not in names]
    if unknown or missing:
        raise ServiceError("the header must name the columns " + ",".join(COLUMNS)
                           + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                           + (f"; missing: {', '.join(missing)}" if missing else ""))
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        values = dict(zip(names, (c.strip() for c in cells), strict=False))
        yield AwardRow(values.get("username", ""), values.get("template", ""),
                       values.get("email", ""), values.get("name", ""),
                       values.get("evidence", ""), values.get("expiry", ""), line=number,
                       problem="more cells than the header names" if len(cells) > len(names)
                       else "")


class AwardService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    # -- one award ---------------------------------------------------------------------------
    def award(self, row: AwardRow, reason: str, *, actor: str = "operator",
              dry_run: bool = False) -> RowOutcome:
        """Award a template to a learner by hand; ServiceError says why not."""
        reason = " ".join(reason.split())
        if not reason:
            raise ServiceError("an operator award needs a reason (it is kept in the badge's why)")
        report = self._run([row], reason, actor=actor, dry_run=dry_run, source="")
        outcome = report.rows[0]
        if outcome.outcome in ("rejected", "skipped"):
            raise ServiceError(f"{outcome.username} / {outcome.template}: {outcome.detail}")
        return outcome

    # -- many --------------------------------------------------------------------------------
    def award_file(self, rows: Iterable[AwardRow], reason: str, *, source: str,
                   actor: str = "operator", dry_run: bool = False,
                   on_row: Callable[[RowOutcome], None] | None = None,
                   on_progress: Callable[[int], None] | None = None) -> AwardReport:
        reason = " ".join(reason.split())
        if not reason:
            raise ServiceError("a bulk award needs a reason (--reason; kept in every badge's "
                               "why)")
        return self._run(rows, reason, actor=actor, dry_run=dry_run, source=source,
                         on_row=on_row, on_progress=on_progress)

    def _run(self, rows: Iterable[AwardRow], reason: str, *, actor: str, dry_run: bool,
             source: str, on_row: Callable[[RowOutcome], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> AwardReport:
        report = AwardReport(dry_run)
        templates = _Templates()
        seen: dict[tuple[str, int], int | None] = {}
        chunk: list[AwardRow] = []
        done = 0

        def flush() -> None:
            nonlocal done
            outcomes = self._chunk(chunk, reason, actor, dry_run, templates, seen)
            for outcome in outcomes:
                report.counts[outcome.outcome] += 1
                report.rows.append(outcome)
                if on_row:
                    on_row(outcome)
            done += len(chunk)
            chunk.clear()
            if on_progress:
                on_progress(done)

        for row in rows:
            chunk.append(row)
            if len(chunk) >= CHUNK:
                flush()
        if chunk:
            flush()
        if not dry_run and report.counts["awarded"]:
            audit(self.clock, "badge.award", source or "by hand",
                  {"reason": reason, "counts": dict(report.counts)}, actor=actor)
        return report

    def _chunk(self, rows: list[AwardRow], reason: str, actor: str, dry_run: bool,
               templates: _Templates, seen: dict[tuple[str, int], int | None]
               ) -> list[RowOutcome]:
        with current_database().atomic() as txn:
            checked = self._check(rows, templates, seen)
            out = []
            for item in checked:
                row = item.row
                if item.problem:
                    out.append(RowOutcome(row.line, row.username, row.template, "rejected",
                                          item.problem))
                elif item.skip:
                    out.append(RowOutcome(row.line, row.username, row.template, "skipped",
                                          item.skip))
                elif dry_run:
                    out.append(RowOutcome(row.line, row.username, row.template, "would award",
                                          _plan_detail(item)))
                else:
                    badge_id = self._write(item, reason, actor)
                    out.append(RowOutcome(row.line, row.username, row.template, "awarded",
                                          _plan_detail(item), badge_id))
            if dry_run:
                txn.rollback()
        return out

    def _check(self, rows: list[AwardRow], templates: _Templates,
               seen: dict[tuple[str, int], int | None]) -> list[_Checked]:
        names = sorted({r.username for r in rows if r.username})
        query = Learner.select().where(Learner.username.in_(names or [""]))
        if is_postgres():  # as a processing batch does: the learners in username order
            query = query.order_by(Learner.username).for_update("FOR NO KEY UPDATE")
        learners = {lr.username: lr for lr in query}
        now = self.clock()
        out = []
        for row in rows:
            item = _Checked(row, None, learners.get(row.username), None)
            item.problem = _row_problem(row, item.learner)
            if not item.problem:
                item.template, item.problem = templates.resolve(row.template)
            if not item.problem and item.template is not None:
                item.expires_at, item.problem = _expiry(row.expiry, item.template, now)
            if not item.problem and item.template is not None:
                key = (row.username, item.template.id)
                if key in seen:
                    first = seen[key]
                    item.problem = "listed twice" + (f" (first on line {first})" if first
                                                     else "")
                else:
                    seen[key] = row.line
                    held = item.learner and Badge.select(Badge.id).where(
                        (Badge.learner == item.learner.id)
                        & (Badge.template == item.template.id)
                        & (Badge.status == "awarded")).scalar()
                    if held:
                        item.skip = f"already holds it (badge {held})"
            out.append(item)
        return out

    def _write(self, item: _Checked, reason: str, actor: str) -> int:
        """The award: badge, outgoing event, issue job and the progress row's pointer."""
        assert item.template is not None
        now = to_db(self.clock())
        row, tpl = item.row, item.template
        learner = item.learner
        if learner is None:
            learner = Learner.create(username=row.username, email=row.email, name=row.name,
                                     updated_at=now)
        elif (row.email and row.email != learner.email) or (row.name and
                                                          row.name != learner.name):
            Learner.update(email=row.email or learner.email, name=row.name or learner.name,
                           updated_at=now).where(Learner.id == learner.id).execute()
            learner.email, learner.name = row.email or learner.email, row.name or learner.name
        badge_uuid = str(uuid.uuid4())
        evidence: dict[str, Any] = {"awarded": {
            "event_id": None, "by": actor, "reason": reason, "at": iso(now),
            "requirements": [], "evidence": row.evidence or None,
            "expires_at": iso(item.expires_at)}}
        badge = Badge.create(
            uuid=badge_uuid, learner=learner.id, template=tpl.id, status="awarded",
            provider_state="created", awarded_at=now, award_event_id=f"operator:{badge_uuid}",
            evidence=json.dumps(evidence), updated_at=now, expires_at=to_db(item.expires_at))
        user = {"id": learner.lms_id, "is_active": learner.is_active,
                "pii": {"username": learner.username, "email": learner.email,
                        "name": learner.name}}
        OutgoingEvent.create(uuid=str(uuid.uuid4()), event_type=BADGE_AWARDED, badge=badge.id,
                             payload=json.dumps(badge_payload(badge_uuid, user, tpl)), time=now)
        DeliveryJob.create(badge=badge.id, account=tpl.account_id, kind="issue", state="queued",
                           next_attempt_at=now, created_at=now, updated_at=now)
        updated = Progress.update(badge=badge.id, updated_at=now).where(
            (Progress.learner == learner.id) & (Progress.template == tpl.id)).execute()
        if not updated:
            Progress.create(learner=learner.id, template=tpl.id, badge=badge.id, updated_at=now)
        return badge.id


class _Templates:
    """Templates by local id or provider id, looked up once per file."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[Template | None, str]] = {}

    def resolve(self, ref: str) -> tuple[Template | None, str]:
        if ref not in self.cache:
            self.cache[ref] = self._find(ref)
        return self.cache[ref]

    @staticmethod
    def _find(ref: str) -> tuple[Template | None, str]:
        if not ref:
            return None, "no template"
        query = Template.select(Template, ProviderAccount).join(ProviderAccount)
        found = list(query.where(Template.external_id == ref))
        if not found and ref.isdigit():
            found = list(query.where(Template.id == int(ref)))
        if not found:
            return None, f"unknown template {ref!r}"
        if len(found) > 1:
            return None, (f"template {ref!r} is held by several accounts: use the local id "
                          f"({', '.join(str(t.id) for t in found)})")
        tpl = found[0]
        problem = activation_problem(tpl)
        if problem and "no requirements" not in problem:
            return None, f"template {tpl.id} ({tpl.name}) cannot be awarded: {problem}"
        return tpl, ""


def _row_problem(row: AwardRow, learner: Learner | None) -> str:
    if row.problem:
        return row.problem
    if not row.username:
        return "no username"
    if len(row.username) > 255 or not row.username.isprintable():
        return "username is not a printable name of at most 255 characters"
    if not row.template:
        return "no template"
    if row.email and ("@" not in row.email or len(row.email) > 254 or " " in row.email):
        return f"email {row.email[:60]!r} is not an address"
    if learner is None and not row.email:
        return "unknown learner: give their email to create them"
    if len(row.evidence) > MAX_TEXT or len(row.name) > 255:
        return f"evidence over {MAX_TEXT} characters or name over 255"
    return ""


def _expiry(text: str, tpl: Template, now: datetime) -> tuple[datetime | None, str]:
    """The award's expiry: the row's (a date or a time, in the future), else the template's
    default lifetime, else none."""
    if text:
        moment = as_moment(text)
        if moment is None:
            return None, f"expiry {text[:40]!r} is not a date (YYYY-MM-DD or ISO 8601 time)"
        if moment <= now:
            return None, f"expiry {moment:%Y-%m-%d %H:%M} is not in the future"
        return moment, ""
    if tpl.expires_in_days:
        return now + timedelta(days=tpl.expires_in_days), ""
    return None, ""


def _plan_detail(item: _Checked) -> str:
    parts = []
    if item.learner is None:
        parts.append("new learner")
    if item.expires_at is not None:
        parts.append(f"expires {item.expires_at.astimezone(UTC):%Y-%m-%d}")
    if item.template is not None:
        parts.append(f"template {item.template.id} ({item.template.name})")
    return ", ".join(parts)

