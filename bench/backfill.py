"""Backfill benchmark: replay the recorded storm events against a newly activated template.

The storm workload of bench/processing.py (200 active templates, 85 % passing) is ingested into
a SQLite file; then a new template listening to the same event type, `(X or Y) and Z` of the
first template's courses plus a penalty, is activated and backfilled. Prints the preview's and
the apply's events/s (target: >= 10,000 events/s on 1,000,000 recorded events), the learners
gaining progress, awarded and revoked, and the raw SQLite insert rate of this machine measured
in the same run (the bound).

    python bench/backfill.py [--events 200000] [--learners 20000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.services import Services
from badgetui.services.templates import SyncedTemplate
from badgetui.settings import Settings
from badgetui.store.models import ProviderAccount, Template
from bench.processing import build_config, write_events

NEW = "00000000-0000-4000-8000-0000000ba5e0"


def raw_sqlite_rate(path: Path, rows: int = 200_000) -> float:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c TEXT)")
    started = time.perf_counter()
    con.executemany("INSERT INTO t VALUES (?, ?, ?)",
                    ((n, f"row{n}", "x" * 40) for n in range(rows)))
    con.commit()
    elapsed = time.perf_counter() - started
    con.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--learners", type=int, default=20_000)
    parser.add_argument("--templates", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="badgetui-bench-backfill-"))
    services = Services.open(Settings(db=str(work / "bench.db")))
    account = services.templates.add_account("credly", str(uuid.uuid4()), "bench-key-0000")
    ids = [str(uuid.UUID(int=i + 1)) for i in range(args.templates)]
    services.templates.upsert_synced(
        ProviderAccount.get_by_id(account.id),
        [SyncedTemplate(ext, f"Template {i}") for i, ext in enumerate(ids)]
        + [SyncedTemplate(NEW, "Backfilled")])
    services.config.import_text(json.dumps(build_config(ids)))
    events_file = work / "events.jsonl"
    write_events(events_file, args.events, args.learners, args.templates, 7)
    started = time.perf_counter()
    with events_file.open() as lines:
        ingested = services.intake.ingest_lines(lines, "storm")
    print(f"recorded {ingested.total:,} events in {time.perf_counter() - started:.1f} s")
    config = build_config([ids[0]])["templates"][0]
    config["external_id"] = NEW
    config["active"] = False
    services.config.import_text(json.dumps({"version": 1, "templates": [config]}))
    new = Template.get(Template.external_id == NEW)
    preview = services.backfill.run(new.id, dry_run=True)
    services.templates.set_active(new.id, True)
    applied = services.backfill.run(new.id)
    services.close()
    bound = raw_sqlite_rate(work / "raw.db")
    for name, report in (("preview", preview), ("apply", applied)):
        rate = report.events / report.seconds if report.seconds else 0
        print(f"{name}: {report.events:,} events in {report.seconds:.2f} s, {rate:,.0f} "
              f"events/s; progressed {report.counts['progressed']:,}, awarded "
              f"{report.counts['awarded']:,}, revoked {report.counts['revoked']:,}")
    print(f"raw SQLite inserts on this machine: {bound:,.0f} rows/s")


if __name__ == "__main__":
    main()
