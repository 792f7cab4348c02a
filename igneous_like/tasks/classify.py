"""Voxel classification of one box: read it with a halo, compute features, predict, write.

The halo (igneous_like.features.halo of the model's settings) is clipped at the volume's edge,
where the filters' boundary mode applies to the box as it does to the whole volume, so every
box's probabilities equal those of predicting the whole volume at once: no seams.
"""
from functools import lru_cache
from typing import Sequence, Union

import numpy as np
from cloudfiles import CloudFile
from cloudvolume import CloudVolume
from taskqueue import queueable

from igneous_like import classifier
from igneous_like.features import halo
from igneous_like.grid import TaskBox


@lru_cache(maxsize=4)
def load_model(model_path: str, sha256: str) -> classifier.Model:
    """The model at `model_path`, once per worker; it must still be the file the run was made for."""
    data = CloudFile(model_path).get()
    if data is None:
        raise FileNotFoundError(f"model file {model_path} is gone")
    if classifier.digest(data) != sha256:
        raise RuntimeError(f"model file {model_path} changed since these tasks were made; "
                           "enqueue the prediction again")
    return classifier.Model.from_bytes(data)


@queueable
def ClassifyTask(image_path: str, dest_path: str, model_path: str, model_sha256: str, mip: int,
                 offset: Sequence[int], shape: Sequence[int], fill_missing: bool = False,
                 compress: Union[str, bool, None] = "gzip") -> None:
    """Write the positive-class probability of one box of the image into DEST (uint8 0-255 or float32)."""
    model = load_model(model_path, model_sha256)
    source = CloudVolume(image_path, mip=mip, fill_missing=fill_missing, progress=False)
    dest = CloudVolume(dest_path, mip=0, compress=compress, progress=False)
    margin = halo(model.settings)
    box = TaskBox.at(offset, shape, source.meta.bounds(mip), low=margin, high=margin)
    image = np.asarray(source.image.download(box.read, mip))[..., 0]
    probability = classifier.predict(model, image, box.own)
    out = classifier.to_uint8(probability) if dest.dtype == np.uint8 else probability
    dest.image.upload(out[..., np.newaxis], box.write.minpt, 0)
