"""`$NAME` parameters rewritten into each driver's marker, never inside strings or comments."""

from datetime import datetime

import duckdb
import pytest

from userflow_assets.warehouse.params import Style, translate
from userflow_assets.warehouse.source import SourceError

TRICKY = """-- a comment naming $LAST_SYNC_TIMESTAMP
SELECT '$LAST_SYNC_TIMESTAMP costs $5' AS note, $$ dollar $LAST_SYNC_TIMESTAMP $$ AS body,
       $tag$ $X $tag$ AS tagged, "$odd" /* $ALSO_NOT */
FROM t WHERE updated_at > $LAST_SYNC_TIMESTAMP OR created_at > $LAST_SYNC_TIMESTAMP"""


def test_qmark_replaces_only_real_parameters_and_repeats_each_use():
    out = translate(TRICKY, Style.QMARK)
    assert out.sql == TRICKY.replace("> $LAST_SYNC_TIMESTAMP", "> ?")
    assert out.names == ("LAST_SYNC_TIMESTAMP", "LAST_SYNC_TIMESTAMP")


@pytest.mark.parametrize(("style", "marker"), [(Style.AT, "@"), (Style.COLON, ":")])
def test_named_styles_bind_each_name_once(style, marker):
    out = translate(TRICKY, style)
    assert out.sql == TRICKY.replace("> $LAST_SYNC_TIMESTAMP", f"> {marker}LAST_SYNC_TIMESTAMP")
    assert out.names == ("LAST_SYNC_TIMESTAMP",)


def test_values_follow_marker_order_and_match_names_case_insensitively():
    out = translate("SELECT $B, $A, $b", Style.QMARK)
    assert out.sql == "SELECT ?, ?, ?"
    assert out.values({"a": 1, "B": 2}) == [2, 1, 2]


def test_a_missing_value_is_named():
    with pytest.raises(SourceError, match=r"\$LAST_SYNC_TIMESTAMP"):
        translate("SELECT $LAST_SYNC_TIMESTAMP", Style.QMARK).values({})


def test_a_bare_question_mark_is_refused_for_positional_binding():
    with pytest.raises(SourceError, match="outside a string"):
        translate("SELECT ? , $A", Style.QMARK)
    # Inside a string it is only text.
    assert translate("SELECT '?', $A", Style.QMARK).sql == "SELECT '?', ?"


def test_a_query_without_parameters_is_unchanged():
    sql = "SELECT a % 2, 'x$y' FROM t"
    out = translate(sql, Style.AT)
    assert (out.sql, out.names) == (sql, ())


def test_the_qmark_sql_binds_in_a_real_engine():
    # DuckDB takes `?` positionally: the rewritten query returns the values in marker order.
    out = translate("SELECT $A AS a, '$A' AS text, $B AS b, $A AS again", Style.QMARK)
    when = datetime(2024, 5, 1, 12, 0)
    row = duckdb.execute(out.sql, out.values({"A": when, "B": 7})).fetchone()
    assert row == (when, "$A", 7, when)
