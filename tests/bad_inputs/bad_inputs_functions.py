"""Python transforms of the bad-input corpus: they hand numpy and pandas scalars to the sync."""

import numpy as np
import pandas as pd


def numpy_scalars(frame: pd.DataFrame) -> pd.DataFrame:
    n = len(frame)
    return pd.DataFrame(
        {
            "i64": pd.Series([np.int64(2**53 - 1)] * n, dtype="int64"),
            "f32": pd.Series([np.float32(0.5 + i) for i in range(n)], dtype="float32"),
            "flag": pd.Series([np.bool_(i % 2 == 0) for i in range(n)], dtype="bool"),
        }
    )


def pandas_times(frame: pd.DataFrame) -> pd.DataFrame:
    values = [pd.NaT, pd.Timestamp("1960-05-06 09:08:09", tz="Europe/Athens")][: len(frame)]
    return pd.DataFrame({"at": pd.Series(values, dtype="datetime64[ns, Europe/Athens]")})


def pandas_missing(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "count": pd.array([pd.NA, 2][: len(frame)], dtype="Int64"),
            "ratio": np.array([np.nan, 0.25][: len(frame)], dtype="float64"),
        }
    )


def huge_numpy(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"big": np.array([2**53 + 1] * len(frame), dtype="int64")})
