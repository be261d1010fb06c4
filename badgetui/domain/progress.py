"""Group arithmetic: requirements in a group are OR-ed, groups are AND-ed."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping

GROUP_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def group_map(requirements: Iterable[tuple[Hashable, str]]) -> dict[str, frozenset[Hashable]]:
    """{group letter: requirement ids} from (requirement id, group) pairs."""
    groups: dict[str, set[Hashable]] = {}
    for req_id, group in requirements:
        groups.setdefault(group, set()).add(req_id)
    return {g: frozenset(ids) for g, ids in groups.items()}


def fulfilled_groups(
    groups: Mapping[str, Collection[Hashable]], fulfilled: Collection[Hashable]
) -> int:
    """How many groups have at least one fulfilled requirement."""
    return sum(1 for ids in groups.values() if any(r in fulfilled for r in ids))


def ratio(groups: Mapping[str, Collection[Hashable]], fulfilled: Collection[Hashable]) -> float:
    """fulfilled groups / groups; 0.0 for a template without requirements."""
    if not groups:
        return 0.0
    return fulfilled_groups(groups, fulfilled) / len(groups)


def is_complete(
    groups: Mapping[str, Collection[Hashable]], fulfilled: Collection[Hashable]
) -> bool:
    """Complete only when every group is fulfilled (and there is at least one group)."""
    return bool(groups) and fulfilled_groups(groups, fulfilled) == len(groups)


def next_free_group(used: Iterable[str]) -> str:
    """The first letter not in use: the default group of a new requirement."""
    taken = set(used)
    for letter in GROUP_LETTERS:
        if letter not in taken:
            return letter
    raise ValueError("all 26 group letters are in use")
