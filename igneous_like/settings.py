"""Operator settings from the environment, read in one place and checked when a command starts,
so a bad value ends every command at once with one line instead of failing each task later."""
import importlib.util
import os
from typing import List

from igneous_like.errors import UserError

GZIP_LEVELS = range(1, 13)  # what CloudFiles' gzip accepts


def gzip_level() -> int:
    """IGNEOUS_LIKE_GZIP_LEVEL, default 7: half the CPU time of CloudFiles' 9, chunks about 10% larger."""
    text = os.environ.get("IGNEOUS_LIKE_GZIP_LEVEL", "7")
    try:
        level = int(text)
    except ValueError:
        level = None
    if level not in GZIP_LEVELS:
        raise UserError(f"IGNEOUS_LIKE_GZIP_LEVEL={text} is not a gzip level; set a whole number from "
                        f"{GZIP_LEVELS.start} to {GZIP_LEVELS.stop - 1}, or unset it")
    return level


def task_modules() -> List[str]:
    """The modules named in IGNEOUS_LIKE_TASK_MODULES (comma-separated), each checked importable."""
    text = os.environ.get("IGNEOUS_LIKE_TASK_MODULES", "")
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package that is missing, or a name like "a..b"
            found = False
        if not found:
            raise UserError(f"IGNEOUS_LIKE_TASK_MODULES names {name}, which Python cannot import; check "
                            "the name and that its folder is on PYTHONPATH, or unset it")
    return names


def check() -> None:
    """Check every setting (the CLI calls this before any command runs)."""
    gzip_level()
    task_modules()
