"""The optional Python function transform: chunks, joins back by row, its own SpecErrors."""

from __future__ import annotations

import pytest
import transform_functions
from transform_kit import attributes, load, make_spec, rejected, run

from userflow_assets.transform import SpecError, pyfunc

MODULE = "transform_functions"


def transform(function: str, outputs: list[str], **extra):
    return make_spec(
        mapping={"email": "email", "domain": "'overridden'"},
        transform={"function": f"{MODULE}:{function}", "inputs": ["email", "seats"], "outputs": outputs},
        **extra,
    )


@pytest.fixture(autouse=True)
def source(con):
    load(
        con,
        """SELECT * FROM (VALUES ('u1', 'a@x.com', 9, 'pro'), ('u2', 'b@y.org', 2, 'free'), ('u3', 'c@z.net', 7, 'pro'))
        t(id, email, seats, plan)""",
    )


def test_outputs_become_attributes_and_override_the_mapping(con):
    spec = transform(
        "domain_and_score",
        ["domain", "score", "seen", "big"],
        filter={"conditions": [{"column": "plan", "operator": "is", "values": ["pro"]}]},
        output_schema={"score": {"type": "number", "nullable": True}},
    )
    result = run(con, spec)
    assert attributes(con) == {
        "u1": {"big": 9, "domain": "x.com", "email": "a@x.com", "score": 1.5, "seen": "2026-01-10T00:00:00Z"},
        "u3": {"big": 7, "domain": "z.net", "email": "c@z.net", "score": 1.5, "seen": "2026-01-08T00:00:00Z"},
    }
    assert (result.filtered_out, result.records) == (1, 2)
    assert result.attributes == "big, domain, email, score, seen"


def test_nan_from_pandas_is_null_and_counted(con):
    run(con, transform("domain_and_score", ["domain", "score", "seen", "big"]))
    assert attributes(con)["u2"]["score"] is None
    assert run(con, transform("domain_and_score", ["domain", "score", "seen", "big"])).nulled_values == 1


def test_chunks(con, monkeypatch):
    load(con, "SELECT 'u' || i AS id, 'p' || i || '@d' || (i % 3) AS email, i AS seats FROM range(5000) r(i)")
    monkeypatch.setattr(pyfunc, "CHUNK_VECTORS", 1)  # 2,048 rows per call
    transform_functions.CALLS.clear()
    result = run(con, transform("domain_and_score", ["domain", "score", "seen", "big"]))
    assert transform_functions.CALLS == [2048, 2048, 904]
    assert result.records == 5000
    assert attributes(con)["u4999"]["domain"] == "d1"
    assert rejected(con) == []


@pytest.mark.parametrize(
    ("function", "outputs", "message"),
    [
        ("wrong_columns", ["domain"], "users.transform.function 'transform_functions:wrong_columns' returned columns ['domain', 'extra']; transform.outputs are ['domain']"),
        ("fewer_rows", ["domain"], "users.transform.function 'transform_functions:fewer_rows' returned 1 rows for 3 (source rows 1-3); it must return one row per row"),
        ("explodes", ["domain"], "users.transform.function 'transform_functions:explodes' raised ValueError: bad input (on source rows 1-3)"),
        ("not_a_frame", ["domain"], "users.transform.function 'transform_functions:not_a_frame' returned list, not a pandas DataFrame"),
        ("missing", ["domain"], "users.transform.function 'transform_functions:missing': module 'transform_functions' has no function 'missing'"),
        ("nested", ["domain"], "users.transform.outputs.domain: the value is STRUCT(a INTEGER); Userflow attributes are flat"),
    ],
)
def test_function_faults_are_spec_errors(con, function, outputs, message):
    with pytest.raises(SpecError) as caught:
        run(con, transform(function, outputs))
    assert str(caught.value).startswith(message)
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'transform'").fetchone() == (0,)


def test_module_that_cannot_be_imported(con):
    spec = make_spec(mapping={"email": "email"}, transform={"function": "no_such_module_here:f", "inputs": ["email"], "outputs": ["x"]})
    with pytest.raises(SpecError, match=r"^users.transform.function 'no_such_module_here:f': cannot import module 'no_such_module_here': ModuleNotFoundError"):
        run(con, spec)


def test_unknown_input_column(con):
    spec = make_spec(mapping={"email": "email"}, transform={"function": f"{MODULE}:explodes", "inputs": ["nope"], "outputs": ["x"]})
    with pytest.raises(SpecError, match=r"^users.transform.inputs: unknown column 'nope'$"):
        run(con, spec)
