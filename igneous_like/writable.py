"""Whether a local destination can be written, asked before a command writes anything."""
import os

from igneous_like.errors import UserError


def check_writable(path: str, file: bool = False) -> None:
    """A local destination (file:// or a plain path) must be a place this process may write: its
    nearest existing folder a directory with write permission, or, for a `file` (a table, a model,
    a plot), a file there to replace. Other protocols answer when written."""
    if "://" in path and not path.startswith("file://"):
        return
    place = path[len("file://"):] if path.startswith("file://") else os.path.abspath(path)
    if file and os.path.isfile(place):
        place = os.path.dirname(place)  # written anew beside it, then renamed over it
    while not os.path.exists(place):
        place = os.path.dirname(place)
    if not os.path.isdir(place):
        raise UserError(f"cannot write {path}: {place} is a file, not a directory; choose another path")
    if not os.access(place, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: no permission to write in {place}; check its permissions "
                        "or choose another path")
