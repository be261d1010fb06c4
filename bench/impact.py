"""Impact benchmark: `config import --dry-run` on the 1M-progress-row database of bench/tui.py.

Takes the cached benchmark database (20 templates, 1,000,000 progress rows, 1,000,000 intake
records; built once by bench/tui.py's builder), and for the active template with the most
progress rows previews three changes: a requirement removed, a requirement's rules tightened
(each of its fulfilling events is read back from the intake log and checked), and its groups
merged into one. Prints the impact counts and the time of each (target: within 2 s).

    python bench/impact.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from badgetui.services import Services
from badgetui.services.config_io import current_config
from badgetui.settings import Settings
from badgetui.store.models import Progress, Template
from bench.tui import cached_database


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    path, _ = cached_database(False, args.scale)
    services = Services.open(Settings(db=str(path)))
    try:
        busiest = max((t for t in Template.select() if t.is_active),
                      key=lambda t: Progress.select().where(Progress.template == t.id).count())
        config = current_config()
        entry = next(e for e in config.templates if e.external_id == busiest.external_id)
        base = json.loads(config.model_dump_json())
        index = config.templates.index(entry)
        changes = {
            "remove a requirement": lambda t: t["requirements"].pop(0),
            "tighten a requirement's rules": lambda t: t["requirements"][0]["rules"].append(
                {"path": "is_passing", "op": "eq", "value": "true"}),
            "merge the groups": lambda t: [r.update(group="A") for r in t["requirements"]],
        }
        print(f"template {busiest.id} ({busiest.name}): "
              f"{Progress.select().where(Progress.template == busiest.id).count():,} progress "
              "rows")
        for name, change in changes.items():
            doc = json.loads(json.dumps(base))
            doc["templates"] = [doc["templates"][index]]
            change(doc["templates"][0])
            started = time.perf_counter()
            plan = services.config.import_text(json.dumps(doc), dry_run=True)
            elapsed = time.perf_counter() - started
            (impact,) = plan.impacts
            print(f"{name}: {elapsed:.2f} s for the whole dry run (impact {impact.seconds:.2f} "
                  f"s): lose {impact.lose:,}, mismatch {impact.mismatch:,}, gain "
                  f"{impact.gain:,}, qualify {impact.qualify:,}, unqualify "
                  f"{impact.unqualify:,}  [{'met' if elapsed <= 2 else 'MISSED'}: <= 2 s]")
    finally:
        services.close()


if __name__ == "__main__":
    main()
