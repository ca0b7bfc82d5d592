"""A user's memberships as canonical JSON: `[{"attributes": .., "group_attributes": .., "id": ..}]`.

Sorted by group ID, exact duplicates merged, null and blank group IDs dropped, so the text
(and the payload hash) changes only when the memberships do.
"""

from __future__ import annotations

import json

from userflow_assets.spec import MembershipSpec
from userflow_assets.transform.errors import SpecError
from userflow_assets.transform.filters import find_column
from userflow_assets.transform.ids import MAX_ID_CHARS, has_control, too_long, usable
from userflow_assets.transform.sqltext import ident, literal
from userflow_assets.transform.types import Kind, ValueType, is_flat
from userflow_assets.transform.values import Check, ValueSql, value_sql

ID_KINDS = (Kind.TEXT, Kind.INT, Kind.BIGINT)
E = "__uf_g"  # the lambda variable: one membership


def memberships_sql(ms: MembershipSpec, columns: dict[str, ValueType], obj: str) -> ValueSql:
    """SQL giving the memberships JSON text of a row, with the rules its group IDs must keep."""
    where = f"{obj}.memberships.column"
    found = find_column(ms.column, columns)
    if found is None:
        raise SpecError(f"{where}: unknown column {ms.column!r} (the source has: {', '.join(list(columns)[:30])})")
    x, vt = ident(found), columns[found]
    if vt.kind in ID_KINDS or (vt.kind == Kind.LIST and vt.element and vt.element.kind in ID_KINDS):
        if ms.group_id_field:
            raise SpecError(f"{where}: {found!r} is {vt.sql}, not a list of structs, so group_id_field does not apply")
        ids = f"[CAST({x} AS VARCHAR)]" if vt.kind != Kind.LIST else f"list_transform({x}, lambda {E}: CAST({E} AS VARCHAR))"
        kept = f"list_sort(list_distinct(list_filter({ids}, lambda {E}: {usable(E)})))"
        fragment = f"coalesce(CAST(to_json(list_transform({kept}, lambda {E}: {{'id': {E}}})) AS VARCHAR), '[]')"
        return ValueSql(fragment, _id_checks(kept, found))
    struct = vt.element if vt.kind == Kind.LIST else vt
    if struct is None or not struct.fields:
        raise SpecError(f"{where}: {found!r} is {vt.sql}; expected a group ID, a list of IDs or a list of structs")
    elements = x if vt.kind == Kind.LIST else f"[{x}]"
    return _struct_memberships(ms, found, elements, struct, obj)


def _struct_memberships(ms: MembershipSpec, column: str, elements: str, struct: ValueType, obj: str) -> ValueSql:
    if not ms.group_id_field:
        raise SpecError(f"{obj}.memberships.group_id_field: {column!r} holds structs ({struct.sql}); name the field with the group ID")
    id_field = _field(struct, ms.group_id_field, f"{obj}.memberships.group_id_field")
    if id_field[1].kind not in ID_KINDS:
        raise SpecError(f"{obj}.memberships.group_id_field: field {id_field[0]!r} is {id_field[1].sql}, not an ID")
    gid = f"CAST({E}.{ident(id_field[0])} AS VARCHAR)"
    checks: list[Check] = []
    nulled: list[str] = []
    parts: list[str] = []
    for key, mapping in (("attributes", ms.attributes), ("group_attributes", ms.group_attributes)):
        if not mapping:
            continue
        pairs = []
        for name in sorted(mapping):
            where = f"{obj}.memberships.{key}.{name}"
            fname, ftype = _field(struct, mapping[name], where)
            if not is_flat(ftype):
                raise SpecError(f"{where}: field {fname!r} is {ftype.sql}; attributes are flat (scalars or lists of scalars)")
            value = value_sql(f"{E}.{ident(fname)}", ftype, f"{column}.{name}", in_list=True)
            pairs.append(f"{literal(json.dumps(name) + ':')} || {value.fragment}")
            # Rules on values inside the list: any membership breaking one rejects the row.
            checks += [Check(f"len(list_filter({elements}, lambda {E}: coalesce({c.condition}, false))) > 0", c.reason) for c in value.checks]
            nulled += [f"coalesce(list_sum(list_transform({elements}, lambda {E}: {n})), 0)" for n in value.nulled]
        parts.append(f"{literal(json.dumps(key) + ':{')} || " + " || ',' || ".join(pairs) + " || '}'")
    parts.append(f"'\"id\":' || CAST(to_json({gid}) AS VARCHAR)")
    element_json = "'{' || " + " || ',' || ".join(parts) + " || '}'"
    pairs_list = (
        f"list_transform(list_filter({elements}, lambda {E}: {usable(gid)}), "
        f"lambda {E}: {{'k': {gid}, 'j': {element_json}}})"
    )
    merged = f"list_sort(list_distinct({pairs_list}))"
    fragment = f"coalesce('[' || array_to_string(list_transform({merged}, lambda {E}: {E}.j), ',') || ']', '[]')"
    ids = f"list_transform({merged}, lambda {E}: {E}.k)"
    checks = _id_checks(ids, column) + checks
    checks.append(
        Check(
            f"len(list_distinct({ids})) < len({ids})",
            literal(f"{column}: a group is listed twice with different membership data"),
        )
    )
    return ValueSql(fragment, checks, nulled)


def _field(struct: ValueType, name: str, where: str) -> tuple[str, ValueType]:
    found = struct.field(name)
    if found is None:
        names = ", ".join(f for f, _ in struct.fields)
        raise SpecError(f"{where}: the struct has no field {name!r} (fields: {names})")
    return found


def _id_checks(ids: str, column: str) -> list[Check]:
    return [
        Check(f"len(list_filter({ids}, lambda {E}: {has_control(E)})) > 0", literal(f"{column}: a group id contains control characters")),
        Check(f"len(list_filter({ids}, lambda {E}: {too_long(E)})) > 0", literal(f"{column}: a group id is longer than {MAX_ID_CHARS} characters")),
    ]
