"""Python transform functions the transform tests import by `module:function`."""

from __future__ import annotations

import numpy as np
import pandas as pd

CALLS: list[int] = []  # rows per call, to see the chunking


def domain_and_score(frame: pd.DataFrame) -> pd.DataFrame:
    CALLS.append(len(frame))
    return pd.DataFrame(
        {
            "domain": frame["email"].str.split("@").str[1].to_numpy(),
            "score": np.where(frame["seats"] > 5, np.float64(1.5), np.nan),
            "seen": pd.to_datetime(frame["seats"], unit="D", origin="2026-01-01").to_numpy(),
            "big": frame["seats"].astype("int64").to_numpy(),
        },
        index=frame.index + 100,  # a different index must not matter: rows are joined by position
    )


def wrong_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"domain": frame["email"], "extra": 1})


def fewer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"domain": frame["email"]}).head(1)


def explodes(frame: pd.DataFrame) -> pd.DataFrame:
    raise ValueError("bad input")


def nested(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"domain": [{"a": 1}] * len(frame)})


def not_a_frame(frame: pd.DataFrame) -> list[int]:
    return [1]


def upper_name(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"name": frame["name"].str.upper().to_numpy()})
