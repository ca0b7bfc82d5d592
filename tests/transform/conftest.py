"""Fixtures of the transform tests (defined with the helpers in transform_kit)."""

from transform_kit import con, kept

__all__ = ["con", "kept"]
