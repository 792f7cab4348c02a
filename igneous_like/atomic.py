"""Atomic file:// writes: a file appears whole under its name, or not at all.

CloudFiles writes a local file in place (open, write), so a worker killed mid-write leaves a
truncated file under the final name: a chunk that every later reader and rerun decodes to
garbage or crashes on. `put_file` writes a temporary file in the same directory and renames it
over the name (atomic within a filesystem), so readers see the old file or the new one; then
it deletes the file's copies under other compressions' names, which would shadow it. It
replaces cloudfiles' FileInterface.put_file, the one place every local write goes through:
CloudVolume's chunks and infos, meshes, skeletons, tables and our own puts, `.gz` names
included. `install` (called by `import igneous_like`) does so as soon as cloudfiles is imported,
without importing it: that costs half a second the CLI and workers must not pay up front.

The new bytes go into an unnamed file (O_TMPFILE), named only once whole, so a process killed
while writing leaves nothing behind. Where the filesystem has no unnamed files, they go to a
hidden name ending in TEMPORARY instead, which a killed process leaves behind: directory
removals delete it and checks for finished tasks ignore it (they look for exact names). No
fsync: the rename protects against a dead process, not against the machine losing power.
"""
import errno
import importlib.abc
import os
import secrets
import shutil
import sys

MODULE = "cloudfiles.interfaces"
TEMPORARY = ".igneous-like-partial"
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
UNNAMED = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
ENCODINGS = ("", ".gz", ".br", ".zstd", ".xz", ".bz2")  # the names cloudfiles gives compressed files


def put_file(self, file_path, content, content_type, compress, cache_control=None, storage_class=None):
    """FileInterface.put_file, through a temporary file and a rename."""
    path = self.get_path_to_file(file_path)
    extension = self.get_extension(compress)
    final = path if os.path.splitext(path)[1] == extension else path + extension
    data = content.encode("utf-8") if isinstance(content, str) else content

    def write() -> None:
        write_whole(final, data)
        drop_other_encodings(final[:len(final) - len(extension)] if extension else final, final)
    return self.io_with_lock(write, path, exclusive=True)


def drop_other_encodings(base: str, kept: str) -> None:
    """Delete the file's copies under other compressions' names: readers take NAME before
    NAME.gz, so a chunk rewritten gzipped beside an older plain one would stay hidden by it."""
    for extension in ENCODINGS:
        if base + extension != kept:
            try:
                os.unlink(base + extension)
            except FileNotFoundError:
                pass


def write_whole(path: str, content) -> None:
    """Write bytes (or a readable file) to a new file beside `path`, then put it under the name."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}{TEMPORARY}")
    try:
        descriptor, named = new_file(directory, temporary)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        descriptor, named = new_file(directory, temporary)
    try:
        with open(descriptor, "wb", closefd=False) as file:
            if hasattr(content, "read"):
                shutil.copyfileobj(content, file)
            else:
                file.write(content)
        if not named:  # the unnamed file gets its temporary name only now, whole
            give_name(descriptor, temporary)
            named = True
        os.replace(temporary, path)
    except BaseException:  # an exception, not a kill: leave nothing behind, and re-raise
        if named:
            os.unlink(temporary)
        raise
    finally:
        os.close(descriptor)


def give_name(descriptor: int, name: str) -> None:
    """Link an unnamed file to `name`: linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N. (os.link calls
    plain link(), which does not follow that link, unless given a directory descriptor.)"""
    descriptors = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(descriptor), name, src_dir_fd=descriptors, follow_symlinks=True)
    finally:
        os.close(descriptors)


def new_file(directory: str, temporary: str) -> tuple:
    """(descriptor, whether the file has a name): an unnamed file in `directory` (O_TMPFILE) where
    the filesystem makes one, so a writer killed mid-write leaves nothing behind; else a new file
    under the hidden `temporary` name (O_TMPFILE is Linux's, and NFS, for one, lacks it)."""
    if UNNAMED:
        try:
            return os.open(directory, UNNAMED | os.O_WRONLY, 0o666), False  # 0o666 less the umask
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    return os.open(temporary, CREATE, 0o666), True


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; hands MODULE's spec on with a loader that patches it once loaded."""

    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE:
            return None
        sys.meta_path.remove(self)
        spec = next(filter(None, (finder.find_spec(fullname, path, target) for finder in sys.meta_path
                                  if hasattr(finder, "find_spec"))), None)
        if spec is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                load(module)
                patch(module)
            spec.loader.exec_module = exec_module
        return spec


def patch(module) -> None:
    module.FileInterface.put_file = put_file


def install() -> None:
    """Make every file:// write atomic, now or when cloudfiles is first imported."""
    if MODULE in sys.modules:
        patch(sys.modules[MODULE])
    elif not any(isinstance(finder, PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, PatchOnImport())
