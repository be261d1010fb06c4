"""The console's paged lists: every filter, both ways a learner prefix is served (a few learners
by id; many checked while scanning), counts, and paging, against answers computed here."""

from __future__ import annotations

from datetime import datetime

import pytest

from badgetui.services import queries
from badgetui.store.models import (
    Badge,
    DeliveryJob,
    IntakeRecord,
    Learner,
    Progress,
    ProviderAccount,
    Template,
)

T = datetime(2026, 11, 1, 12, 0)
#: More "a" learners than queries._SPARSE_LEARNERS: "a" is served by the dense scan.
DENSE_NAMES = [f"a{n:04d}" for n in range(queries._SPARSE_LEARNERS + 100)]
SPARSE_NAMES = ["bea", "bob", "bram", "carl"]


@pytest.fixture
def world(services):
    acct = ProviderAccount.create(provider="credly", identifier="org", name="Org", api_key="k",
                                  created_at=T)
    t1, t2 = (Template.create(account=acct, provider="credly", external_id=f"t{n}",
                              name=f"T{n}", created_at=T, updated_at=T) for n in (1, 2))
    names = DENSE_NAMES + SPARSE_NAMES
    Learner.insert_many([{"username": n, "updated_at": T} for n in names]).execute()
    ids = dict(Learner.select(Learner.username, Learner.id).tuples())
    progress, badges, intake = [], [], []
    for i, name in enumerate(names):
        for tpl in (t1, t2):
            complete = (i + tpl.id) % 3 == 0
            progress.append({"learner": ids[name], "template": tpl.id, "complete": complete,
                             "fulfilled_groups": int(complete), "updated_at": T})
            if complete:
                badges.append({
                    "uuid": f"{name}-{tpl.id}", "learner": ids[name], "template": tpl.id,
                    "status": "revoked" if i % 5 == 0 else "awarded",
                    "provider_state": "error" if i % 7 == 0 else "accepted",
                    "awarded_at": T, "award_event_id": "e", "updated_at": T})
        intake.append({"event_id": f"ev-{i}", "ref_id": f"ev-{i}", "username": name,
                       "outcome": ("processed", "ignored", "dropped")[i % 3], "received_at": T})
    Progress.insert_many(progress).execute()
    Badge.insert_many(badges).execute()
    IntakeRecord.insert_many(intake).execute()
    # One badge whose delivery failed without the badge saying so: "failed only" finds it.
    quiet = Badge.get((Badge.provider_state == "accepted") & (Badge.status == "awarded"))
    DeliveryJob.create(badge=quiet, account=acct, kind="issue", state="failed",
                       next_attempt_at=T, created_at=T, updated_at=T)
    return {"t1": t1.id, "t2": t2.id, "quiet": quiet.id, "progress": progress, "badges": badges,
            "intake": intake, "ids": ids}


def names_of(rows) -> list[str]:
    return sorted(r.username for r in rows)


@pytest.mark.parametrize("prefix", ["a", "a00", "b", "br", "carl", "zz"])
def test_progress_prefix_template_and_complete(world, prefix):
    by_id = {v: k for k, v in world["ids"].items()}
    for template in (None, world["t1"]):
        for complete in (None, True, False):
            want = sorted(
                by_id[p["learner"]] for p in world["progress"]
                if by_id[p["learner"]].startswith(prefix)
                and (template is None or p["template"] == template)
                and (complete is None or p["complete"] == complete))
            got = queries.list_progress(learner_prefix=prefix, template=template,
                                        complete=complete, limit=10_000)
            assert names_of(got) == want
            assert queries.count_progress(learner_prefix=prefix, template=template,
                                          complete=complete) == len(want)


@pytest.mark.parametrize("prefix", [None, "a", "b", "bo"])
def test_badges_filters(world, prefix):
    by_id = {v: k for k, v in world["ids"].items()}
    failed_ids = {world["quiet"]}
    stored = {b.uuid: b.id for b in Badge.select(Badge.uuid, Badge.id)}
    for status in (None, "awarded", "revoked"):
        for failed_only in (False, True):
            want = sorted(
                by_id[b["learner"]] for b in world["badges"]
                if (prefix is None or by_id[b["learner"]].startswith(prefix))
                and (status is None or b["status"] == status)
                and (not failed_only or b["provider_state"] == "error"
                     or stored[b["uuid"]] in failed_ids))
            args = {"learner_prefix": prefix, "status": status, "failed_only": failed_only}
            assert names_of(queries.list_badges(**args, limit=10_000)) == want
            assert queries.count_badges(**args) == len(want)
    newest = queries.list_badges(learner_prefix=prefix, limit=3, newest_first=True)
    assert [b.id for b in newest] == sorted((b.id for b in newest), reverse=True)


@pytest.mark.parametrize("prefix", [None, "a", "b", "carl"])
def test_intake_outcome_and_learner(world, prefix):
    for outcome in (None, "processed", "dropped"):
        want = sorted(
            r["username"] for r in world["intake"]
            if (prefix is None or r["username"].startswith(prefix))
            and (outcome is None or r["outcome"] == outcome))
        got = queries.list_intake(learner_prefix=prefix, outcome=outcome, limit=10_000)
        assert sorted(r.username for r in got) == want
        assert queries.count_intake(learner_prefix=prefix, outcome=outcome) == len(want)


def test_paging_is_stable_and_complete(world):
    pages = [queries.list_progress(learner_prefix="a", limit=200, offset=o)
             for o in range(0, 3000, 200)]
    ids = [r.id for page in pages for r in page]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 2 * len(DENSE_NAMES)


def test_counts_stop_at_the_cap(world, monkeypatch):
    assert queries.count_progress() == len(world["progress"])
    assert queries.capped_count(Progress.select(), cap=100) == 101  # "100+"


def test_exact_learner_and_template_choices(world):
    [row] = queries.list_progress(learner="bob", template=world["t2"])
    assert row.username == "bob" and row.template == "T2"
    assert queries.count_progress(learner="bob") == 2
    assert [name for name, _ in queries.template_choices()] == ["T1 (credly)", "T2 (credly)"]
