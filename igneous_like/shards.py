"""Sharded image scales: the block of the volume one shard file holds. Igneous scripts import
image_shard_shape_from_spec from here (`igneous.shards`); CloudVolume computes it from the spec's
preshift and minishard bits."""
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed.sharding import image_shard_shape_from_spec
from cloudvolume.lib import Vec

__all__ = ["image_shard_shape_from_spec", "shard_shape"]


def shard_shape(cv: CloudVolume, mip: int) -> Vec:
    """The voxels one shard file of the sharded scale `mip` covers (uploads and tasks cut along it)."""
    scale = cv.meta.scale(mip)
    return Vec(*image_shard_shape_from_spec(scale["sharding"], scale["size"], scale["chunk_sizes"][0]),
               dtype=int)
