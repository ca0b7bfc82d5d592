"""values.same_value: the one rule for "Userflow holds the value the sync sent"."""

import pytest

from userflow_assets.values import same_value


@pytest.mark.parametrize(
    ("sent", "held", "same"),
    [
        (1, 1.0, True),
        (7, 7.000000001, False),
        (2.5, 2.5, True),
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00+00:00", True),
        ("2024-01-01T00:00:00Z", "2024-01-01T02:00:00+02:00", True),
        ("2024-01-01T00:00:00", "2024-01-01T00:00:00Z", True),  # a naive instant is UTC
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", False),
        ("pro", "pro", True),
        ("pro", "Pro", False),
        ("not a date", "2024-01-01T00:00:00Z", False),
        ("7", 7, False),
        (True, True, True),
        (True, 1, False),
        (0, False, False),
        (None, None, True),
        ("x", None, False),
        (None, "x", False),
        (["a", "b"], ["a", "b"], True),
        (["a", "b"], ["b", "a"], False),
        ([1, "2024-01-01T00:00:00Z"], [1.0, "2024-01-01T00:00:00+00:00"], True),
        (["a"], "a", False),
    ],
)
def test_values_are_the_same_by_meaning(sent, held, same):
    assert same_value(sent, held) is same
    assert same_value(held, sent) is same
