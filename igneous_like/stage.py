"""The bookkeeping of a job in steps, written once for every area that has one.

A step's tasks write one part each into a work directory (by convention LAYER/KEY/NAME, beside
the mip's chunks). The first step writes a record of its grid and options there; later steps
read it to find every part, check that none is missing, and gather them. Clean deletes the
directory. Each area keeps its own arithmetic and file names; only this bookkeeping is shared.
"""
import io
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from cloudfiles import CloudFiles

from igneous_like.errors import UserError

BATCH = 256  # parts fetched per request batch: parts can be megabytes, and requests run in parallel
ADVICE = "run them (execute the queue) first"
MERGE_ROWS = 1 << 22  # merge pending parts once they hold this many rows (or as many as the total)


class Record:
    """Mixin for a frozen dataclass kept as JSON: lists read back as tuples, so a record read
    from storage equals the record that was written."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict):
        return cls(**{key: _tuples(value) for key, value in data.items()})


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class WorkDir:
    """The directory of a job's intermediate files: records, parts and what later steps make."""
    url: str

    @classmethod
    def of(cls, cv, mip: int, name: str) -> "WorkDir":
        """LAYER/KEY/NAME for a CloudVolume `cv`: each layer and mip keeps its own."""
        return cls(cv.meta.join(cv.cloudpath, cv.meta.key(mip), name))

    @property
    def files(self) -> CloudFiles:
        return CloudFiles(self.url)

    def save(self, name: str, record) -> None:
        """Write a record (a Record or plain JSON); never cached, since a new run rewrites it."""
        data = record.to_json() if isinstance(record, Record) else record
        self.files.put_json(name, data, cache_control="no-cache")

    def load(self, name: str, kind=None):
        """The record `name` (as `kind`, a Record class, if given), or None where there is none."""
        data = self.files.get_json(name)
        return data if data is None or kind is None else kind.from_json(data)

    def require(self, name: str, advice: str, kind=None):
        """The record `name`; without it the step before has not run, and `advice` says so."""
        record = self.load(name, kind)
        if record is None:
            raise UserError(advice)
        return record

    def put_part(self, name: str, data: bytes) -> None:
        """A task's part, written whole in one request: a part that exists is complete."""
        self.files.put(name, data, compress=None, content_type="application/octet-stream")

    def put_arrays(self, name: str, **arrays: np.ndarray) -> None:
        """A part of arrays, as one compressed .npz."""
        self.put_part(name, npz(arrays))

    def missing(self, names: Sequence[str], prefix: Optional[str] = None) -> List[str]:
        """The parts not written yet: by one listing of `prefix` where every name lies under it
        (thousands of names per request), else by asking for each name."""
        if prefix is None:
            present = self.files.exists(list(names))
            return [name for name in names if not present[name]]
        listed = set(self.files.list(prefix=prefix))
        return [name for name in names if name not in listed]

    def check_complete(self, names: Sequence[str], what: str, advice: str = ADVICE,
                       prefix: Optional[str] = None) -> None:
        """Refuse to go on while a part is missing, naming how many and the first."""
        missing = self.missing(names, prefix)
        if missing:
            raise self.incomplete(missing, len(names), what, advice)

    def incomplete(self, missing: Sequence[str], total: int, what: str, advice: str) -> UserError:
        """One line: how many parts are missing, the first of them, and what to do."""
        return UserError(f"{len(missing)} of {total} {what} have not finished (the first: "
                         f"{self.url}/{missing[0]}); {advice}")

    def gather(self, names: Sequence[str], what: str, advice: str = ADVICE) -> Iterator[bytes]:
        """Each part's bytes in the order of `names`, BATCH at a time, so memory holds one batch;
        a missing part stops the gather with the completeness check's message."""
        files = self.files
        for start in range(0, len(names), BATCH):
            batch = names[start:start + BATCH]
            contents = files.get(batch, return_dict=True)
            gone = [name for name in batch if contents.get(name) is None]
            if gone:
                raise self.incomplete(self.missing(names) or gone, len(names), what, advice)
            yield from (contents[name] for name in batch)

    def gather_arrays(self, names: Sequence[str], what: str) -> Iterator[Dict[str, np.ndarray]]:
        """gather of .npz parts, each as its arrays."""
        return map(from_npz, self.gather(names, what))

    def clean(self, prefix: str = "", suffix: str = "") -> int:
        """Delete the files under `prefix` whose names end in `suffix` (all: the whole
        directory); returns how many there were."""
        files = self.files
        names = [name for name in files.list(prefix=prefix) if name.endswith(suffix)]
        files.delete(names)
        return len(names)


def merged_as_they_come(parts: Iterable, merge: Callable, size: Callable, limit: int = MERGE_ROWS):
    """merge(all parts), merging pending parts into the running total whenever they hold `limit`
    rows or as many as the total: memory stays near a few times the result's size."""
    total, pending, pending_size = merge([]), [], 0
    for part in parts:
        pending.append(part)
        pending_size += size(part)
        if pending_size >= max(limit, size(total)):
            total, pending, pending_size = merge([total] + pending), [], 0
    return merge([total] + pending)


def id_samples(ids: np.ndarray, count: int) -> np.ndarray:
    """`count` of a part's sorted ids, evenly spread, its first and last among them (zeros if it has
    none): what id_ranges plans merge tasks from without reading the parts."""
    if not ids.size:
        return np.zeros(count, np.uint64)
    return ids[np.linspace(0, ids.size - 1, count).astype(int)].astype(np.uint64)


def id_ranges(parts: Sequence[Tuple[int, np.ndarray]], num_tasks: int) -> np.ndarray:
    """Id edges 0 = e0 < e1 < ... < 2**64-1 for merge tasks that each own a range of ids, from each
    part's (rows, id_samples): about equal shares of rows (a sample stands for its part's rows /
    samples), at most one range per sample."""
    parts = [(rows, samples) for rows, samples in parts if rows]
    if not parts:
        return np.array([0, 2**64 - 1], dtype=np.uint64)
    weights = np.concatenate([np.full(samples.size, rows / samples.size) for rows, samples in parts])
    samples = np.concatenate([samples for _, samples in parts])
    num_tasks = min(num_tasks, samples.size + 1)
    order = np.argsort(samples, kind="stable")
    cumulative = np.cumsum(weights[order])
    cuts = np.searchsorted(cumulative, cumulative[-1] * np.arange(1, num_tasks) / num_tasks)
    inner = np.unique(samples[order][np.minimum(cuts, samples.size - 1)])
    return np.unique(np.r_[np.uint64(0), inner[inner > 0], np.uint64(2**64 - 1)]).astype(np.uint64)


def npz(arrays: Dict[str, np.ndarray], compress: bool = True) -> bytes:
    """Arrays as the bytes of one .npz file (never pickle)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def from_npz(data: bytes) -> Dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
