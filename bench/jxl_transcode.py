"""Sizes of JPEG chunks recompressed into lossless JPEG XL by `image xfer` (no decoding; back to
the very JPEG files), against JPEG XL of the decoded voxels, on an EM-like image made from the
real segmentation (a grey level per object, Gaussian grain of 12), 128x128x16 chunks.

    python bench/jxl_transcode.py [--size 256]
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import measure, real_segmentation

from igneous_like.layers import write_array

PROGRAM = [sys.executable, "-m", "igneous_like", "--quiet"]


def em_like(seg: np.ndarray) -> np.ndarray:
    grey = ((seg.astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(24)) % np.uint64(200)
    grain = np.random.default_rng(1).normal(0, 12, seg.shape)
    return np.asfortranarray(np.clip(grey + 40 + grain, 0, 255).astype(np.uint8))


def size(folder: Path) -> int:
    """Bytes of the layer's chunk files (info and provenance left out)."""
    return sum(f.stat().st_size for f in chunk_files(folder))


def chunk_files(folder: Path) -> list:
    return [f for f in folder.rglob("*") if f.is_file() and f.name not in ("info", "provenance")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="edge in x and y; z is a quarter of it")
    args = parser.parse_args()
    image = em_like(real_segmentation()[:args.size, :args.size, :args.size // 4])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_array(f"file://{root}/raw", image, "image", chunk=(128, 128, 16))
        xfer = lambda src, dest, *opts: measure(PROGRAM + [
            "image", "xfer", f"file://{root}/{src}", f"file://{root}/{dest}", "--skip-downsample", *opts])
        xfer("raw", "jpeg", "--encoding", "jpeg")
        recompressed = xfer("jpeg", "jxl", "--encoding", "jxl", "--encoding-level", "100")
        decoded = xfer("jpeg", "jxl_voxels", "--encoding", "jxl", "--encoding-level", "100", "--delete-bg")
        xfer("jxl", "back", "--encoding", "jpeg")
        jpeg = size(root / "jpeg")
        back = chunk_files(root / "back")
        same = len(back) == len(chunk_files(root / "jpeg")) > 0 and all(
            (root / "jpeg" / f.relative_to(root / "back")).read_bytes() == f.read_bytes() for f in back)
        print(f"{image.shape} uint8, {image.nbytes:,} B raw; JPEG (quality 85) {jpeg:,} B")
        print(f"JPEG XL recompressed from the JPEG files: {size(root / 'jxl'):,} B "
              f"({size(root / 'jxl') / jpeg - 1:+.1%}), {recompressed.seconds:.1f} s; back to JPEG byte for "
              f"byte: {'yes' if same else 'NO'}")
        print(f"JPEG XL (lossless) of the decoded voxels (--delete-bg makes it decode): "
              f"{size(root / 'jxl_voxels'):,} B ({size(root / 'jxl_voxels') / jpeg:.2f}x the JPEG), "
              f"{decoded.seconds:.1f} s")


if __name__ == "__main__":
    main()
