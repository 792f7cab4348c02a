"""Post-processing tasks: dust removal and the three block steps of hole filling.

Hole filling keeps its files under SRC/KEY/fill_holes/:

    background/           the background's connected components (a segmentation layer)
    survey/BOX.npz        one block's component sizes, edge contacts and neighbour pairs
    holes.ltab            hole component -> the label that fills it (a label table)
"""
from typing import Sequence, Union

import fastremap
import numpy as np
from cloudvolume import CloudVolume
from cloudvolume.lib import Bbox
from taskqueue import queueable

from igneous_like import label_table, postprocess
from igneous_like.grid import TaskBox
from igneous_like.stage import WorkDir, npz

HOLES_TABLE = "holes.ltab"


def survey_name(box: Bbox) -> str:
    return f"survey/{box.to_filename()}.npz"


def read(path: str, mip: int, box: Bbox, fill_missing: bool = False) -> np.ndarray:
    cv = CloudVolume(path, mip=mip, fill_missing=fill_missing, progress=False)
    return np.asfortranarray(np.asarray(cv.image.download(box, mip))[..., 0])


def write(path: str, mip: int, box: Bbox, data: np.ndarray, compress: Union[str, bool, None]) -> None:
    CloudVolume(path, mip=mip, compress=compress, progress=False).image.upload(data, box.minpt, mip)


@queueable
def DustTask(src_path: str, dest_path: str, mip: int, offset: Sequence[int], shape: Sequence[int],
             counts: str, min_size: int, compress: Union[str, bool, None] = None) -> None:
    """Copy one box, zeroing the labels with fewer than `min_size` voxels in the whole volume."""
    box = TaskBox.at(offset, shape).write
    labels = read(src_path, mip, box)
    sizes = label_table.Table(counts).lookup(fastremap.unique(labels))
    write(dest_path, mip, box, postprocess.remove_small(labels, sizes, min_size), compress)


@queueable
def HoleSurveyTask(src_path: str, work: str, mip: int, offset: Sequence[int], shape: Sequence[int]) -> None:
    """Sizes, edge contacts and neighbouring labels of the background components in one box."""
    bounds = CloudVolume(src_path, mip=mip, progress=False).meta.bounds(mip)
    box = TaskBox.at(offset, shape, bounds, low=1, high=1)
    neighbours = np.pad(read(src_path, mip, box.read), box.padding)
    background = read(f"{work}/background", mip, box.write)
    on_edge = [(low > 0, high > 0) for low, high in box.padding]  # the margin left the volume there
    (ids, counts), edge, (first, second) = postprocess.hole_survey(background, neighbours, on_edge)
    survey = dict(ids=ids, counts=counts, edge=edge.astype(np.uint64), first=first, second=second)
    WorkDir(work).put_part(survey_name(box.write), npz(survey, compress=False))


@queueable
def FillHolesTask(src_path: str, dest_path: str, work: str, mip: int, offset: Sequence[int],
                  shape: Sequence[int], compress: Union[str, bool, None] = None) -> None:
    """Copy one box with its holes filled by the labels that surround them."""
    box = TaskBox.at(offset, shape).write
    labels = read(src_path, mip, box)
    background = read(f"{work}/background", mip, box)
    present = fastremap.unique(background)
    fills = label_table.Table(f"{work}/{HOLES_TABLE}").lookup(present)
    write(dest_path, mip, box, postprocess.apply_fills(labels, background, present, fills), compress)
