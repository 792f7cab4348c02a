"""One exception hierarchy for mistakes a user can fix.

The CLI turns a UserError into one line on stderr and exit code 2; everything else is a bug
or an infrastructure failure and keeps its traceback.
"""


class UserError(ValueError):
    """Input that cannot work: the message says what is wrong and how to fix it."""


class LayerNotFoundError(UserError):
    """The path does not hold a Precomputed layer (no readable info file)."""


class MissingChunkError(UserError):
    """A task read a chunk that does not exist, without --fill-missing."""


class TaskFailures(RuntimeError):
    """One or more tasks failed; each was reported when it failed. `user_errors`: every failure
    was a mistake in the input (say, a missing chunk), so the command exits 2, not 1."""

    def __init__(self, failed: int, total: int, how: str = "failed", user_errors: bool = False):
        super().__init__(f"{failed} of {total} tasks {how} (errors above)")
        self.failed = failed
        self.total = total
        self.user_errors = user_errors


class WorkerFailures(RuntimeError):
    """Worker processes ended with an error outside any task; each was reported."""
