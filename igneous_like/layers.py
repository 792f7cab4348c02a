"""Write a numpy array as a new one-mip Precomputed layer: demo data, test fixtures, small imports."""
from typing import Sequence, Union

import numpy as np
from cloudvolume import CloudVolume


def write_array(path: str, data: np.ndarray, layer_type: str, resolution: Sequence[int] = (16, 16, 40),
                offset: Sequence[int] = (0, 0, 0), chunk: Sequence[int] = (64, 64, 64),
                encoding: str = "raw", compress: Union[str, bool] = False) -> str:
    """Create the layer's info and write `data` (x,y,z) at `offset`; returns `path`."""
    info = CloudVolume.create_new_info(
        num_channels=1, layer_type=layer_type, data_type=np.dtype(data.dtype).name, encoding=encoding,
        resolution=list(resolution), voxel_offset=list(offset), volume_size=list(data.shape),
        chunk_size=list(chunk))
    cv = CloudVolume(path, info=info, compress=compress, progress=False)
    cv.commit_info()
    cv[cv.bounds] = np.asfortranarray(data)
    return path
