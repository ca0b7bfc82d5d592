"""The optional Python function transform: what SQL cannot say, run over DataFrames in chunks.

The function sees only its `inputs` columns of the rows the filter kept, in source order, and
must return exactly its `outputs` columns, row for row. Its outputs are staged as a DuckDB
table keyed by source row, so from there on they are normalised by the same SQL as mapped
attributes.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from userflow_assets.spec import PythonTransform
from userflow_assets.sqltext import ident
from userflow_assets.transform.errors import SpecError

CHUNK_VECTORS = 49  # DuckDB vectors of 2,048 rows: about 100k rows per call
ROW = "__uf_row"

Function = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class TransformOutputs:
    table: str  # temp table: __uf_row plus one column per output
    columns: dict[str, str]  # output name -> column in `table`
    nulled: int  # NaN values pandas handed over (they arrive in DuckDB as NULL)


def load_function(spec: PythonTransform, obj: str) -> Function:
    module_name, _, name = spec.function.partition(":")
    where = f"{obj}.transform.function {spec.function!r}"
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the spec's to fix
        raise SpecError(f"{where}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    function = getattr(module, name, None)
    if not callable(function):
        raise SpecError(f"{where}: module {module_name!r} has no function {name!r}")
    return function


def run_function(
    con: duckdb.DuckDBPyConnection, function: Function, spec: PythonTransform, kept: str, table: str, obj: str
) -> TransformOutputs:
    """Call `function` over the `inputs` of the rows in `kept` and stage its outputs as `table`."""
    where = f"{obj}.transform.function {spec.function!r}"
    inputs = ", ".join(ident(c) for c in spec.inputs)
    cursor = con.execute(f"SELECT {ROW}, {inputs} FROM {kept} ORDER BY {ROW}")
    frames: list[pd.DataFrame] = []
    while True:
        chunk = cursor.fetch_df_chunk(CHUNK_VECTORS)
        if chunk.empty:
            break
        frames.append(_call(function, chunk, spec, where))
    internal = {name: f"__uf_py_{i}" for i, name in enumerate(spec.outputs)}
    if frames:
        staged = pd.concat(frames, ignore_index=True).rename(columns=internal)
    else:
        staged = pd.DataFrame({ROW: pd.Series([], dtype="int64"), **{c: pd.Series([], dtype=object) for c in internal.values()}})
    nulled = sum(_nan_count(staged[c]) for c in internal.values())
    view = "__uf_py_frame"
    con.register(view, staged)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {view}")
    finally:
        con.unregister(view)
    return TransformOutputs(table, internal, nulled)


def _call(function: Function, chunk: pd.DataFrame, spec: PythonTransform, where: str) -> pd.DataFrame:
    rows = chunk[ROW].to_numpy()
    given = chunk.drop(columns=[ROW]).reset_index(drop=True)
    span = f"source rows {int(rows[0])}-{int(rows[-1])}"
    try:
        result = function(given)
    except Exception as exc:  # the function's failure: name it, never drop the rows silently
        raise SpecError(f"{where} raised {type(exc).__name__}: {exc} (on {span})") from exc
    if not isinstance(result, pd.DataFrame):
        raise SpecError(f"{where} returned {type(result).__name__}, not a pandas DataFrame")
    got = [str(c) for c in result.columns]
    if sorted(got) != sorted(spec.outputs) or len(set(got)) != len(got):
        raise SpecError(f"{where} returned columns {got}; transform.outputs are {list(spec.outputs)}")
    if len(result) != len(given):
        raise SpecError(f"{where} returned {len(result)} rows for {len(given)} ({span}); it must return one row per row")
    out = result[list(spec.outputs)].reset_index(drop=True)
    out.insert(0, ROW, rows)
    return out


def _nan_count(series: pd.Series) -> int:
    """NaN floats pandas holds (DuckDB reads them as NULL); None and NaT are nulls already."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind == "f":
        return int(np.isnan(series.to_numpy()).sum())
    if series.dtype == object:
        return int(sum(1 for v in series if isinstance(v, float) and math.isnan(v)))
    return 0
