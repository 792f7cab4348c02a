"""Ingest tasks: copy one chunk-aligned box of a source file (see igneous_like.sources) into a
new layer."""
from typing import Optional, Sequence

from cloudvolume import CloudVolume
from cloudvolume.lib import Vec
from taskqueue import queueable

from igneous_like.layers import upload
from igneous_like.sources import open_source


@queueable
def IngestTask(src: str, kind: str, dest_path: str, offset: Sequence[int], shape: Sequence[int],
               dataset: Optional[str] = None, axes: Optional[str] = None, compress=None) -> None:
    """Read the box `offset`+`shape` (destination voxels) of the source and write it at mip 0."""
    dest = CloudVolume(dest_path, progress=False, compress=compress)
    start = Vec(*offset) - dest.meta.voxel_offset(0)
    with open_source(src, kind, dataset, axes) as source:
        img = source.read(start, start + Vec(*shape))
    upload(dest, img, offset, 0)
