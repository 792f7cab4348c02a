"""Progress for people: a tqdm bar on a terminal, periodic log lines otherwise, nothing if quiet."""
import logging
import sys
import time
from typing import Optional

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    """Counts finished units of work; shows rate and ETA on a terminal or in log lines."""

    def __init__(self, total: Optional[int], desc: str, quiet: bool = False, interval: float = 10.0):
        self.total, self.desc, self.interval = total, desc, interval
        self.done = 0
        self.start = self.last_log = time.monotonic()
        self.bar = None
        self.quiet = quiet
        if not quiet and sys.stderr.isatty():
            self.bar = tqdm(total=total, desc=desc, unit="task", dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and time.monotonic() - self.last_log >= self.interval:
            self.last_log = time.monotonic()
            log.info(self.line())

    def set_total(self, total: int) -> None:
        """The work grew (or shrank) to `total` units."""
        if total == self.total:
            return
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.done}"
        if self.total is not None:
            text += f"/{self.total}"
            if rate > 0:
                text += f", ETA {format_seconds((self.total - self.done) / rate)}"
        return text + f" ({rate:.2f} tasks/s)"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet:
            log.info(self.line())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
