"""A user's memberships as canonical JSON: `[{"attributes": .., "group_attributes": .., "id": ..}]`.

Sorted by group ID, exact duplicates merged, null and blank group IDs dropped, so the text
(and the payload hash) changes only when the memberships do. The work is split in two steps,
each computed once per row: `items` (a sorted list of {k: group id, j: JSON text}) from the
source column, then the JSON text and the group-ID rules from that list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb

from userflow_assets.spec import MembershipSpec
from userflow_assets.sqltext import ident, literal
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.filters import find_column
from userflow_assets.transform.ids import MAX_ID_CHARS, has_control, too_long, usable
from userflow_assets.transform.types import Kind, ValueType, is_flat
from userflow_assets.transform.values import Check, value_sql

ID_KINDS = (Kind.TEXT, Kind.INT, Kind.BIGINT)
E = "__uf_g"  # the lambda variable: one membership
# Stand for the columns holding each step's list; replaced when the query is built.
UNSORTED = "__UF_MS_UNSORTED__"
ITEMS = "__UF_MS_ITEMS__"
KEYS = "__UF_MS_KEYS__"


@dataclass
class MembershipSql:
    unsorted: str  # over the source row: list of {k: group id, j: JSON text}
    items: str  # over UNSORTED: sorted
    merged: str  # over ITEMS: exact duplicates merged
    keys: str  # over ITEMS (merged): the group IDs joined by commas, for the ID rules
    fragment: str  # over ITEMS (merged): the JSON text
    checks: list[Check] = field(default_factory=list)  # over ITEMS (merged)
    value_checks: list[Check] = field(default_factory=list)  # over the source row: membership values
    nulled: list[str] = field(default_factory=list)  # over the source row
    column: str = ""  # the source column


def memberships_sql(
    ms: MembershipSpec, columns: dict[str, ValueType], obj: str, json_read: tuple[str, ValueType] | None = None
) -> MembershipSql:
    """SQL giving the memberships JSON text of a row, with the rules its group IDs must keep.

    `json_read`, for a JSON column: the expression reading it as typed values (`json_reader`) and its type."""
    where = f"{obj}.memberships.column"
    found = find_column(ms.column, columns)
    if found is None:
        raise SpecError(f"{where}: unknown column {ms.column!r} (the source has: {', '.join(list(columns)[:30])})")
    x, vt = json_read or (ident(found), columns[found])
    if vt.kind in ID_KINDS or (vt.kind == Kind.LIST and vt.element and vt.element.kind in ID_KINDS):
        if ms.group_id_field:
            raise SpecError(f"{where}: {found!r} is {vt.sql}, not a list of structs, so group_id_field does not apply")
        ids = f"[CAST({x} AS VARCHAR)]" if vt.kind != Kind.LIST else f"list_transform({x}, lambda {E}: CAST({E} AS VARCHAR))"
        items = f"list_transform(list_filter({ids}, lambda {E}: {usable(E)}), lambda {E}: {{'k': {E}, 'j': {E}}})"
        result = _assemble(found, items, "CAST(to_json(list_transform({m}, lambda __uf_g: {{'id': __uf_g.k}})) AS VARCHAR)")
        return result
    struct = vt.element if vt.kind == Kind.LIST else vt
    if struct is None or not struct.fields:
        raise SpecError(f"{where}: {found!r} is {vt.sql}; expected a group ID, a list of IDs or a list of structs")
    elements = x if vt.kind == Kind.LIST else f"[{x}]"
    return _struct_memberships(ms, found, elements, struct, obj)


def json_structure(con: duckdb.DuckDBPyConnection, source: str, column: str, ms: MembershipSpec) -> str:
    """The structure every row of JSON `column` shares (`[{"account_id":"VARCHAR"}]`), so that
    `from_json` reads it as the list of structs a warehouse without them (e.g. `jsonb_agg` in
    Postgres) sends as JSON. With no value to learn it from, the one the spec names."""
    (structure,) = con.execute(f"SELECT json_group_structure({ident(column)}) FROM {source}").fetchone()
    if structure and structure != '"NULL"':
        return structure
    if not ms.group_id_field:
        return '["VARCHAR"]'
    fields = [ms.group_id_field, *ms.attributes.values(), *ms.group_attributes.values()]
    return json.dumps([{name: "VARCHAR" for name in fields}])


def _assemble(column: str, unsorted: str, fragment_template: str, checks: list[Check] | None = None,
              nulled: list[str] | None = None) -> MembershipSql:
    # Most users have one membership: sorting and merging run only where there is more than one.
    items = f"(CASE WHEN len({UNSORTED}) <= 1 THEN {UNSORTED} ELSE list_sort({UNSORTED}) END)"
    keys = f"list_transform({ITEMS}, lambda {E}: {E}.k)"
    merged = f"(CASE WHEN len({ITEMS}) <= 1 OR list_unique({keys}) = len({ITEMS}) THEN {ITEMS} ELSE list_sort(list_distinct({ITEMS})) END)"
    fragment = "coalesce(" + fragment_template.format(m=ITEMS) + ", '[]')"
    # The group IDs joined (computed once, as KEYS): one regexp and one length test per row
    # instead of one per group; CASE (lazy, unlike AND) runs the per-group test only when needed.
    rules = [
        Check(has_control(KEYS), literal(f"{column}: a group id contains control characters")),
        Check(
            f"CASE WHEN {too_long(KEYS)} THEN len(list_filter({keys}, lambda {E}: {too_long(E)})) > 0 ELSE false END",
            literal(f"{column}: a group id is longer than {MAX_ID_CHARS} characters"),
        ),
        Check(
            f"CASE WHEN len({ITEMS}) > 1 THEN list_unique({keys}) < len({ITEMS}) ELSE false END",
            literal(f"{column}: a group is listed twice with different membership data"),
        ),
    ]
    joined = f"array_to_string({keys}, ',')"
    return MembershipSql(unsorted, items, merged, joined, fragment, rules, checks or [], nulled or [], column)


def _struct_memberships(ms: MembershipSpec, column: str, elements: str, struct: ValueType, obj: str) -> MembershipSql:
    if not ms.group_id_field:
        raise SpecError(f"{obj}.memberships.group_id_field: {column!r} holds structs ({struct.sql}); name the field with the group ID")
    id_name, id_type = _field(struct, ms.group_id_field, f"{obj}.memberships.group_id_field")
    if id_type.kind not in ID_KINDS:
        raise SpecError(f"{obj}.memberships.group_id_field: field {id_name!r} is {id_type.sql}, not an ID")
    gid = f"CAST({E}.{ident(id_name)} AS VARCHAR)"
    checks: list[Check] = []
    nulled: list[str] = []
    parts: list[str] = []
    for key, mapping in (("attributes", ms.attributes), ("group_attributes", ms.group_attributes)):
        if not mapping:
            continue
        pairs = []
        for i, name in enumerate(sorted(mapping)):
            where = f"{obj}.memberships.{key}.{name}"
            fname, ftype = _field(struct, mapping[name], where)
            if not is_flat(ftype):
                raise SpecError(f"{where}: field {fname!r} is {ftype.sql}; attributes are flat (scalars or lists of scalars)")
            value = value_sql(f"{E}.{ident(fname)}", ftype, f"{column}.{name}", in_list=True)
            pairs += [literal(("{" if i == 0 else ",") + json.dumps(name) + ":"), value.fragment]
            # A rule on a value inside the list: any membership breaking it rejects the row.
            checks += [Check(f"len(list_filter({elements}, lambda {E}: coalesce({c.condition}, false))) > 0", c.reason) for c in value.checks]
            nulled += [f"coalesce(list_sum(list_transform({elements}, lambda {E}: {n})), 0)" for n in value.nulled]
        parts += [literal(("," if parts else "{") + json.dumps(key) + ":"), *pairs, "'}'"]
    parts += [literal(("," if parts else "{") + '"id":'), f"CAST(to_json({gid}) AS VARCHAR)", "'}'"]
    element_json = f"concat({', '.join(parts)})"
    unsorted = f"list_transform(list_filter({elements}, lambda {E}: {usable(gid)}), lambda {E}: {{'k': {gid}, 'j': {element_json}}})"
    fragment = "'[' || array_to_string(list_transform({m}, lambda __uf_g: __uf_g.j), ',') || ']'"
    return _assemble(column, unsorted, fragment, checks, nulled)


def _field(struct: ValueType, name: str, where: str) -> tuple[str, ValueType]:
    found = struct.field(name)
    if found is None:
        names = ", ".join(f for f, _ in struct.fields)
        raise SpecError(f"{where}: the struct has no field {name!r} (fields: {names})")
    return found
