"""Name hygiene: names that differ only in case or separators.

Userflow's event and attribute names are case-sensitive, so `Feature_Activated` and
`feature_activated` are two events, and a flow triggered by one never sees the other.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations

_SEPARATORS = re.compile(r"[_\-. ]")


def normalise(name: str) -> str:
    """The form two near-duplicate names share: lowercase, without `_`, `-`, `.` and spaces."""
    return _SEPARATORS.sub("", name.lower())


@dataclass(frozen=True)
class NamedIn:
    name: str
    source: str  # where the name was seen, e.g. "warehouse" or "Userflow"


@dataclass(frozen=True)
class NearDuplicate:
    kind: str  # "event" or "user attribute"
    first: NamedIn
    second: NamedIn

    def describe(self) -> str:
        return (
            f"{self.kind} names {self.first.name!r} ({self.first.source}) and "
            f"{self.second.name!r} ({self.second.source}) differ only in case or separators"
        )


def near_duplicates(kind: str, ours: Iterable[NamedIn], theirs: Iterable[NamedIn]) -> list[NearDuplicate]:
    """Every pair of distinct names with the same normal form, among `ours` and between `ours`
    and `theirs`; pairs made only of `theirs` are not ours to fix."""
    own = {n.name: n for n in ours}
    other = {n.name: n for n in theirs if n.name not in own}
    groups: dict[str, list[NamedIn]] = {}
    for named in [*own.values(), *other.values()]:
        groups.setdefault(normalise(named.name), []).append(named)
    pairs: list[NearDuplicate] = []
    for members in groups.values():
        ordered = sorted(members, key=lambda n: (n.name not in own, n.name))
        for first, second in combinations(ordered, 2):
            if first.name in own or second.name in own:
                pairs.append(NearDuplicate(kind, first, second))
    return sorted(pairs, key=lambda p: (p.kind, normalise(p.first.name), p.first.name, p.second.name))
