"""The transform stage's own error: a spec that does not fit the real source."""


class SpecError(ValueError):
    """A sync-spec fault found against the source table, raised before anything is written.

    The message names the object, the spec entry (e.g. `users.mapping.full_name`) and the fault.
    """
