"""One exception hierarchy for mistakes a user can fix.

The CLI turns a UserError into one line on stderr and exit code 2; everything else is a bug
or an infrastructure failure and keeps its traceback.
"""


class UserError(ValueError):
    """Input that cannot work: the message says what is wrong and how to fix it."""


class LayerNotFoundError(UserError):
    """The path does not hold a Precomputed layer (no readable info file)."""


class TaskFailures(RuntimeError):
    """One or more tasks raised; each was reported when it failed."""

    def __init__(self, failed: int, total: int):
        super().__init__(f"{failed} of {total} tasks failed (errors above)")
        self.failed = failed
        self.total = total
