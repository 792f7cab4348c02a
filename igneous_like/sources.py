"""Arrays on disk that `image create` ingests: numpy .npy, TIFF (one multi-page file or a folder of
2-D slices), NRRD (raw or gzip), HDF5, NIfTI, zarr (v2, v3), N5 and crackle.

Each opens as a Source whose shape is x,y,z and whose `read(box)` reads that box alone: a
memory map, a dataset slice, the TIFF pages of the box's z range, or a gzip stream decompressed
up to the box's last plane, so no task holds more than its own box of a stack larger than memory.
Sources are local paths: every worker that runs a task opens the file itself (use a shared file
system for a fleet).
"""
import gzip
import os
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from igneous_like.errors import UserError

AXES = ("xyz", "zyx")
DEFAULT_AXES = {  # the array's index order as its library returns it
    "npy": "xyz", "hdf5": "xyz", "crackle": "xyz",  # as Igneous reads them
    "nrrd": "xyz", "nifti": "xyz", "n5": "xyz",  # their headers list x first
    "tiff": "zyx",  # pages are z, rows y, columns x
    "zarr": "zyx", "zarr3": "zyx",  # the OME-Zarr order
}
EXTENSIONS = {".npy": "npy", ".tif": "tiff", ".tiff": "tiff", ".nrrd": "nrrd", ".h5": "hdf5",
              ".hdf5": "hdf5", ".nii": "nifti", ".nii.gz": "nifti", ".ckl": "crackle", ".ckl.gz": "crackle"}
ARRAY_MARKERS = {".zarray": "zarr", "zarr.json": "zarr3", "attributes.json": "n5"}
NEUROGLANCER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "float32")
SUPPORTED = (".npy, .tif/.tiff (a file or a folder of 2-D slices), .nrrd, .h5/.hdf5, .nii/.nii.gz, "
             ".ckl/.ckl.gz, zarr and N5")


def local_path(path: str) -> str:
    """An absolute local path; other protocols are refused: every worker opens the source itself."""
    if path.startswith("file://"):
        path = path[len("file://"):]
    if "://" in path:
        raise UserError(f"{path}: image create reads local files only (every worker opens the source "
                        "itself: put it on a shared file system for a fleet)")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise UserError(f"{path} does not exist; check the path")
    return path


def source_format(path: str, dataset: Optional[str] = None) -> str:
    """Which format `path` holds, from its extension or, for a folder, what is inside it."""
    if os.path.isdir(path):
        inner = os.path.join(path, dataset) if dataset else path
        for marker, kind in ARRAY_MARKERS.items():
            if os.path.isfile(os.path.join(inner, marker)):
                return kind
        if dataset is None and slice_files(path):
            return "tiff"
        raise UserError(f"{inner} is not a zarr or N5 array nor a folder of .tif slices; give the array "
                        "inside a group with --dataset, or a file of: " + SUPPORTED)
    name = path.lower()
    for extension, kind in sorted(EXTENSIONS.items(), key=lambda item: -len(item[0])):
        if name.endswith(extension):
            return kind
    raise UserError(f"{path}: unsupported file type; image create reads {SUPPORTED}")


def natural_key(name: str) -> list:
    """Sort key that compares runs of digits as numbers: slice2 before slice10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def slice_files(folder: str) -> List[str]:
    names = [name for name in os.listdir(folder) if name.lower().endswith((".tif", ".tiff"))]
    return [os.path.join(folder, name) for name in sorted(names, key=natural_key)]


def spatial_axes(shape: Sequence[int], axes: str) -> List[int]:
    """The array's axes that hold x, y (and z): the first ones for xyz, the last ones, reversed, for
    zyx. Other axes must have one element (a 2-D array is one z slice)."""
    count = len(shape)
    if count < 2:
        raise UserError(f"the source is {count}-D; image create needs a 2-D or 3-D array")
    spatial = list(range(min(count, 3))) if axes == "xyz" else list(range(count - 1, max(count - 4, -1), -1))
    extra = [size for axis, size in enumerate(shape) if axis not in spatial]
    if any(size != 1 for size in extra):
        raise UserError(f"the source is {count}-D (shape {tuple(int(s) for s in shape)}, axes {axes}): image "
                        "create ingests one 3-D channel; save each channel or time point as its own array")
    return spatial


def cut_shape(shape: Sequence[int], index: Sequence[slice]) -> tuple:
    """The shape of an array of `shape` cut by `index` (slices)."""
    return tuple(len(range(*part.indices(size))) for size, part in zip(shape, index))


class Source:
    """A source array seen as x,y,z: `shape`, `dtype` (native byte order) and `read(box)`."""

    def __init__(self, array, axes: str, dtype: Optional[np.dtype] = None, closers: Sequence = ()):
        self.array, self.closers = array, list(closers)
        self.spatial = spatial_axes(array.shape, axes)
        self.shape = tuple(int(array.shape[axis]) for axis in self.spatial) + (1,) * (3 - len(self.spatial))
        self.dtype = np.dtype(dtype if dtype is not None else array.dtype).newbyteorder("=")

    def read(self, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
        """The box [start, stop) in x,y,z."""
        index: list = [0] * len(self.array.shape)
        for axis, low, high in zip(self.spatial, start, stop):
            index[axis] = slice(int(low), int(high))
        data = np.asarray(self.array[tuple(index)])
        order = sorted(self.spatial)
        data = data.transpose([order.index(axis) for axis in self.spatial])
        if data.ndim == 2:
            data = data[..., np.newaxis]
        return np.asfortranarray(data, dtype=self.dtype)

    def check(self) -> None:
        """Checks that read the whole source's metadata (every TIFF page or slice), once."""
        getattr(self.array, "check", lambda: None)()

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        for close in self.closers:
            close()


def open_source(path: str, kind: str, dataset: Optional[str] = None, axes: Optional[str] = None) -> Source:
    """Open `path` (a local path of format `kind`) lazily; `axes` overrides the format's order."""
    axes = axes or DEFAULT_AXES[kind]
    if axes not in AXES:
        raise UserError(f"--axes {axes} is not one of {', '.join(AXES)}")
    if dataset is not None and kind not in ("hdf5", "zarr", "zarr3", "n5"):
        raise UserError(f"--dataset names an array in an HDF5 file or a zarr/N5 group, not in {kind} files")
    return OPENERS[kind](path, dataset, axes)


def open_npy(path: str, dataset, axes: str) -> Source:
    try:
        return Source(np.load(path, mmap_mode="r", allow_pickle=False), axes)
    except ValueError as err:
        raise UserError(f"{path} is not a numpy array file ({err})") from err


def open_hdf5(path: str, dataset: Optional[str], axes: str) -> Source:
    import h5py
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path} is not an HDF5 file ({err})") from err
    names: List[str] = []
    handle.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    if dataset is None and len(names) != 1:
        handle.close()
        raise UserError(f"{path} holds {len(names)} datasets ({', '.join(names[:8]) or 'none'}); "
                        "choose one with --dataset")
    name = dataset if dataset is not None else names[0]
    if name not in handle or not isinstance(handle[name], h5py.Dataset):
        handle.close()
        raise UserError(f"{path} has no dataset {name!r}; it has: {', '.join(names[:8]) or 'none'}")
    return Source(handle[name], axes, closers=[handle.close])


def open_nifti(path: str, dataset, axes: str) -> Source:
    import nibabel
    try:
        proxy = nibabel.load(path).dataobj
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError) as err:
        raise UserError(f"{path} is not a NIfTI image ({err})") from err
    corner = (slice(0, 1),) * len(proxy.shape)  # the dtype after the header's scaling, if any
    return Source(proxy, axes, dtype=np.asarray(proxy[corner]).dtype)


def open_crackle(path: str, dataset, axes: str) -> Source:
    """Crackle labels: the compressed stream is held (memory-mapped where not gzipped) and a read
    decodes only the z slices of its box."""
    import crackle
    try:
        array = crackle.aload(path, allow_mmap=not path.endswith(".gz"))
    except (crackle.FormatError, OSError, EOFError, ValueError) as err:
        raise UserError(f"{path} is not a crackle file ({err})") from err
    return Source(array, axes, dtype=array.dtype)


class TensorStoreArray:
    """A zarr/N5 array read box by box through TensorStore."""

    def __init__(self, store):
        import tensorstore as ts
        self.store = store[ts.d[:].translate_to[0]]
        self.shape, self.dtype = tuple(self.store.shape), self.store.dtype.numpy_dtype

    def __getitem__(self, index):
        return self.store[index].read().result()


def open_tensorstore(path: str, dataset: Optional[str], axes: str, driver: str) -> Source:
    import tensorstore as ts
    inner = os.path.join(path, dataset) if dataset else path
    try:
        store = ts.open({"driver": driver, "kvstore": {"driver": "file", "path": inner + "/"}},
                        read=True, open=True).result()
    except ValueError as err:
        raise UserError(f"cannot open {inner} as a {driver} array ({err})") from err
    return Source(TensorStoreArray(store), axes)


class TiffStack:
    """A multi-page TIFF file, or a folder of 2-D TIFF slices, as a (z, y, x) array that reads only
    the pages of the z range asked for."""

    def __init__(self, files: List[str]):
        import tifffile
        self.files = files
        first = tifffile.TiffFile(files[0])
        self.page = self.describe(files[0], first.pages[0])
        self.shape = (len(files) if len(files) > 1 else len(first.pages),) + self.page[0]
        self.dtype = self.page[1]
        self.pages = [first] if len(files) == 1 else None
        if len(files) > 1:
            first.close()

    def check(self) -> None:
        """Refuse pages or slices of another shape or type than the first (once, before the tasks:
        a task trusts the first page)."""
        if self.pages:
            self.check_pages(self.pages[0])
        else:
            self.check_slices()

    @staticmethod
    def describe(name: str, page) -> Tuple[tuple, np.dtype]:
        if len(page.shape) != 2:
            raise UserError(f"{name}: its pages are {page.shape} (channels or tiles in depth); image create "
                            "reads one channel of 2-D pages")
        return tuple(page.shape), np.dtype(page.dtype)

    def check_pages(self, tif) -> None:
        for number, page in enumerate(tif.pages):
            if self.describe(tif.filename, page) != self.page:
                raise UserError(f"{tif.filename}: page {number} is {page.shape} {page.dtype}, page 0 is "
                                f"{self.page[0]} {self.page[1]}; every page must have one shape and type")

    def check_slices(self) -> None:
        import tifffile
        for name in self.files:
            with tifffile.TiffFile(name) as tif:
                if len(tif.pages) != 1 or self.describe(name, tif.pages[0]) != self.page:
                    raise UserError(
                        f"{name} is {len(tif.pages)} page(s) of {tif.pages[0].shape} {tif.pages[0].dtype}, "
                        f"{self.files[0]} is one page of {self.page[0]} {self.page[1]}; every slice of "
                        "the folder must be one page of one shape and type")

    def __getitem__(self, index) -> np.ndarray:
        """Pages one at a time, each cut to the box at once: a task holds its box and one page."""
        import tifffile
        depth, rows, columns = index
        planes = range(*depth.indices(self.shape[0]))
        out = np.empty((len(planes),) + cut_shape(self.page[0], (rows, columns)), self.dtype)
        for number, z in enumerate(planes):
            page = self.pages[0].pages[z].asarray() if self.pages else tifffile.imread(self.files[z])
            out[number] = page.reshape(self.page[0])[rows, columns]
        return out

    def close(self) -> None:
        for tif in self.pages or ():
            tif.close()


def open_tiff(path: str, dataset, axes: str) -> Source:
    import tifffile
    files = slice_files(path) if os.path.isdir(path) else [path]
    try:
        stack = TiffStack(files)
    except tifffile.TiffFileError as err:
        raise UserError(f"cannot read the TIFF {files[0]} ({err})") from err
    return Source(stack, axes, closers=[stack.close])


NRRD_TYPES = {np.dtype(numpy): names.split(",") for numpy, names in {
    "i1": "signed char,int8,int8_t", "u1": "uchar,unsigned char,uint8,uint8_t",
    "i2": "short,short int,signed short,signed short int,int16,int16_t",
    "u2": "ushort,unsigned short,unsigned short int,uint16,uint16_t",
    "i4": "int,signed int,int32,int32_t", "u4": "uint,unsigned int,uint32,uint32_t",
    "i8": "longlong,long long,long long int,signed long long,signed long long int,int64,int64_t",
    "u8": "ulonglong,unsigned long long,unsigned long long int,uint64,uint64_t",
    "f4": "float", "f8": "double"}.items()}
NRRD_DTYPE = {name: dtype for dtype, names in NRRD_TYPES.items() for name in names}


def nrrd_layout(path: str) -> Tuple[dict, int, np.dtype, tuple]:
    """(header, byte offset of the data, dtype, x,y,z shape) of an NRRD file with attached data."""
    import nrrd
    with open(path, "rb") as handle:
        try:
            header = nrrd.read_header(handle)
        except nrrd.NRRDError as err:
            raise UserError(f"{path} is not an NRRD file ({err})") from err
        offset = handle.tell()
    if "data file" in header or "datafile" in header:
        raise UserError(f"{path} keeps its voxels in a separate data file; image create reads NRRD files "
                        "with attached data (convert it with unu or pynrrd)")
    if int(header.get("line skip", 0)) or int(header.get("byte skip", 0)):
        raise UserError(f"{path} uses line skip or byte skip, which image create does not read")
    dtype = NRRD_DTYPE.get(str(header["type"]).lower())
    if dtype is None:
        raise UserError(f"{path} has NRRD type {header['type']!r}, which image create does not read")
    if header.get("endian") == "big":
        dtype = dtype.newbyteorder(">")
    sizes = [int(size) for size in header["sizes"]]
    while len(sizes) > 3 and sizes[-1] == 1:  # trailing single planes change nothing (x fastest)
        sizes.pop()
    if len(sizes) > 3:
        spatial_axes(sizes, "xyz")  # refuses, saying so
    return header, offset, dtype, tuple(sizes + [1] * (3 - len(sizes)))


class GzipPlanes:
    """The data of a gzip-encoded NRRD as an (x, y, z) array: a read decompresses the stream from
    its start up to the last z plane asked for, keeping one plane at a time."""

    def __init__(self, path: str, offset: int, dtype: np.dtype, shape: tuple):
        self.path, self.offset, self.dtype, self.shape = path, offset, dtype, shape
        self.plane_bytes = shape[0] * shape[1] * dtype.itemsize

    def __getitem__(self, index) -> np.ndarray:
        columns, rows, depth = index
        planes = range(*depth.indices(self.shape[2]))
        out = np.empty(cut_shape(self.shape[:2], (columns, rows)) + (len(planes),), self.dtype)
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            with gzip.GzipFile(fileobj=handle) as stream:
                stream.seek(planes.start * self.plane_bytes)  # decompresses and drops what comes before
                for number in range(len(planes)):
                    out[..., number] = self.plane(stream)[columns, rows]
        return out

    def plane(self, stream) -> np.ndarray:
        data = stream.read(self.plane_bytes)
        if len(data) < self.plane_bytes:
            raise UserError(f"{self.path} ends before its last voxel: the file is truncated")
        return np.frombuffer(data, self.dtype).reshape(self.shape[:2], order="F")


def open_nrrd(path: str, dataset, axes: str) -> Source:
    header, offset, dtype, shape = nrrd_layout(path)
    encoding = header.get("encoding", "raw")
    if encoding == "raw":
        if os.path.getsize(path) < offset + int(np.prod(shape)) * dtype.itemsize:
            raise UserError(f"{path} ends before its last voxel: the file is truncated")
        return Source(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F"), axes)
    if encoding in ("gzip", "gz"):
        return Source(GzipPlanes(path, offset, dtype, shape), axes)
    raise UserError(f"{path} has NRRD encoding {encoding!r}; image create reads raw and gzip "
                    "(re-save it with one of those)")


OPENERS = {
    "npy": open_npy, "hdf5": open_hdf5, "nifti": open_nifti, "tiff": open_tiff, "nrrd": open_nrrd,
    "crackle": open_crackle,
    "zarr": lambda path, dataset, axes: open_tensorstore(path, dataset, axes, "zarr"),
    "zarr3": lambda path, dataset, axes: open_tensorstore(path, dataset, axes, "zarr3"),
    "n5": lambda path, dataset, axes: open_tensorstore(path, dataset, axes, "n5"),
}


def check_dtype(dtype: np.dtype, layer_type: str) -> None:
    """Refuse voxel types Neuroglancer cannot show, and labels that are not unsigned integers."""
    if dtype.name not in NEUROGLANCER_DTYPES:
        raise UserError(f"the source's voxels are {dtype.name}, which Neuroglancer cannot show; convert them "
                        f"to one of {', '.join(NEUROGLANCER_DTYPES)} first")
    if layer_type == "segmentation" and dtype.kind != "u":
        raise UserError(f"a segmentation needs unsigned integer labels, and the source is {dtype.name}; "
                        "use --layer-type image, or convert the labels to uint32 or uint64 first")
