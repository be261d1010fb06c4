"""A migration report as the lines `migrate credentials` prints and the console shows."""

from __future__ import annotations

from typing import Any

#: Items listed per finding (the JSON report lists them all).
EXAMPLES = 5


def _counts(created: dict[str, int], unchanged: dict[str, int], *kinds: str) -> str:
    parts = []
    for index, kind in enumerate(kinds):
        new = created.get(kind, 0)
        same = unchanged.get(kind, 0)
        name = f"{kind} " if index else ""
        parts.append(f"{name}{new:,} new" + (f", {same:,} already here" if same else ""))
    return "; ".join(parts)


def report_lines(data: dict[str, Any]) -> list[str]:
    """The plan (or what was done) as the lines `migrate credentials` prints."""
    site = data["site"]
    where = f", site {site['id']} ({site['domain'] or '?'})" if site["id"] is not None else ""
    created, unchanged, counts = data["created"], data["unchanged"], data["source_counts"]
    if data["dry_run"]:
        head = "plan (dry run: nothing written)"
    elif data["changed"]:
        head = "migrated in one transaction"
    else:
        head = "nothing to change: everything is already here"
    lines = [f"source: {data['source']}{where}", head]
    for account in data["accounts"]:
        lines.append(f"  account {account['provider']} {account['identifier']} "
                     f"({account['name']}), key {account['api_key'] or 'none'}")
    active = sum(1 for t in data["templates"] if t["active"])
    badges = {k.removeprefix("badges "): v for k, v in created.items()
              if k.startswith("badges ")}
    lines += [
        f"accounts      {counts['accounts']:,}: "
        + _counts(created, unchanged, "accounts"),
        f"templates     {counts['templates']:,} ({active:,} active): "
        + _counts(created, unchanged, "templates"),
        f"configuration {counts['requirements']:,} requirements, {counts['rules']:,} rules, "
        f"{counts['penalties']:,} penalties: {len(data['config_changes']):,} changes",
        f"learners      {counts['learners']:,}: " + _counts(created, unchanged, "learners"),
        f"progress      {counts['progress']:,} ({counts['fulfillments']:,} fulfillments): "
        + _counts(created, unchanged, "progress", "fulfillments"),
        f"badges        {counts['badges']:,}: "
        + (", ".join(f"{v:,} {k} new" for k, v in sorted(badges.items())) or "0 new")
        + (f"; {unchanged['badges']:,} already here" if unchanged.get("badges") else ""),
    ]
    if data["jobs"]:
        lines.append("delivery      " + ", ".join(f"{v:,} {k}" for k, v in
                                                  sorted(data["jobs"].items()))
                     + " queued (run `badgetui deliver`)")
    if data["findings"]:
        lines.append("findings:")
    for finding in data["findings"]:
        lines.append(f"  {finding['code']} ({finding['count']:,}): {finding['title']}")
        lines.append(f"    -> {finding['choice']}")
        for item in finding["items"][:EXAMPLES]:
            lines.append(f"    {item}")
        if finding["count"] > EXAMPLES:
            lines.append(f"    … {finding['count'] - EXAMPLES:,} more (--json lists all)")
    return lines
