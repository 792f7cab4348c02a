"""The container of every igneous_like model file: an .npz of plain arrays with a JSON manifest.

Model files come from storage, and queue messages name them, so loading one must never run
code: arrays are read with allow_pickle=False, and anything that is not a zip archive (a pickle
or joblib file) is refused before numpy sees it.
"""
import io
import json
import zipfile
from typing import Dict, Tuple

import numpy as np

UNREADABLE = (ValueError, OSError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile)


def pack(arrays: Dict[str, np.ndarray], manifest: dict, fmt: str, version: int) -> bytes:
    """The file: the arrays, and the manifest with the caller's format and version."""
    meta = dict(manifest, format=fmt, version=version)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, manifest=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def unpack(data: bytes, fmt: str, version: int, what: str) -> Tuple[Dict[str, np.ndarray], dict]:
    """(arrays, manifest) of a file of `fmt` and `version`; ValueError, saying why, for anything else."""
    if not data.startswith(b"PK"):  # not a zip archive, so no .npz; np.load would call it a pickle
        raise ValueError(f"not {what} file: model files are .npz archives of plain arrays, and "
                         "igneous_like never loads pickles or joblib files; train the model again")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        meta = json.loads(str(arrays.pop("manifest")))
    except UNREADABLE as err:
        raise ValueError(f"not {what} file ({type(err).__name__}: {err}); train it again") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt or meta.get("version") != version:
        found = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else (None, None)
        raise ValueError(f"{what} file of another format or version ({found[0]} {found[1]}, not {fmt} "
                         f"{version}); train it again")
    return arrays, meta
