"""Consistent copies of a strata database directory, and atomic replacement of a directory.

The file names come from format/FORMAT.md section 2 (the directory layout),
the contract this module relies on; it never reads a file's contents.

Why a copy is consistent without parsing the MANIFEST: a file the MANIFEST
names is deleted only after a newer MANIFEST has replaced it (FORMAT.md 2,
segment and deletion-file lifetimes). So if the MANIFEST's bytes are the same
before and after the data files were copied, every file it names existed for
the whole copy, and the copy holds them all. Segments and deletion files are
immutable once written; files the MANIFEST does not name (a crashed flush's
leftovers) are copied too, and are harmless. If the MANIFEST changed meanwhile
(a writer flushed or merged), the copy starts over.
"""

import ctypes
import errno
import os
import shutil
import tempfile

from .errors import Busy, NotFound

MANIFEST = "MANIFEST"
_ATTEMPTS = 20


def _is_data_file(name, include_wal):
    if name.startswith("seg-") and name.endswith(".seg"):
        return True
    if name.startswith("del-") and name.endswith(".del"):
        return True
    return include_wal and name.startswith("wal-") and name.endswith(".log")


def has_wal(src):
    """Whether directory ``src`` holds write-ahead log files (writes not all flushed, maybe)."""
    return any(_is_data_file(n, True) and n.startswith("wal-") for n in os.listdir(src))


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def snapshot(src, sink, include_wal=False, expect=None):
    """Hand a consistent set of the database files of ``src`` to ``sink``.

    expect: when not None, the MANIFEST bytes the copy must have (a handle
    opened at that state); any other state is refused with strata.Busy.
    sink.reset() starts over; sink.add_file(name, path) takes a data file
    (FileNotFoundError from it means the file went away: skipped, see the
    module comment); sink.add_bytes(MANIFEST, data) comes last. With
    ``include_wal`` the write-ahead log files are copied too (a prefix of what
    a live writer appends: replay of the copy cuts a torn tail).
    """
    manifest_path = os.path.join(src, MANIFEST)
    for _ in range(_ATTEMPTS):
        try:
            before = _read(manifest_path)
        except FileNotFoundError:
            raise NotFound(detail="%s: no database here (no MANIFEST)" % src) from None
        if expect is not None and before != expect:
            raise Busy(detail="%s has changed on disk since it was opened (another writer or "
                              "save_index replaced it); load it again" % src)
        sink.reset()
        for name in sorted(os.listdir(src)):
            if _is_data_file(name, include_wal):
                try:
                    sink.add_file(name, os.path.join(src, name))
                except FileNotFoundError:
                    continue
        if _read(manifest_path) == before:
            sink.add_bytes(MANIFEST, before)
            return
    raise Busy(detail="%s changed during each of %d attempts to copy it" % (src, _ATTEMPTS))


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSink:
    """Copies into an existing empty directory; every file fsynced, then the directory."""

    def __init__(self, dst):
        self.dst = dst

    def reset(self):
        for name in os.listdir(self.dst):
            os.unlink(os.path.join(self.dst, name))

    def add_file(self, name, path):
        out = os.path.join(self.dst, name)
        shutil.copyfile(path, out)
        _fsync_path(out)

    def add_bytes(self, name, data):
        write_file(os.path.join(self.dst, name), data)
        _fsync_path(self.dst, directory=True)


class MemorySink:
    """Reads the files into a dict name -> bytes (for pickling)."""

    def __init__(self):
        self.files = {}

    def reset(self):
        self.files = {}

    def add_file(self, name, path):
        self.files[name] = _read(path)

    def add_bytes(self, name, data):
        self.files[name] = bytes(data)


def write_file(path, data):
    """Write ``data`` to ``path`` (created or truncated) and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_files(dst, files):
    """Write a dict name -> bytes (from MemorySink) into empty directory ``dst``, MANIFEST last."""
    for name in sorted(files, key=lambda n: n == MANIFEST):
        if os.sep in name or name in (".", "..") or (name != MANIFEST and
                                                      not _is_data_file(name, True)):
            raise ValueError("not a database file name: %r" % name)
        write_file(os.path.join(dst, name), files[name])
    _fsync_path(dst, directory=True)


# ---- replacing a directory --------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
    _renameat2.restype = ctypes.c_int
except (AttributeError, OSError):
    _renameat2 = None


def _exchange(a, b):
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def replace_dir(new, target):
    """Put directory ``new`` at ``target`` (absent, or a directory that is removed).

    With an existing target the two are exchanged in one step where the file
    system allows it (so ``target`` never goes missing), else renamed aside
    first. The parent directory is fsynced.
    """
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.lexists(target):
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new)  # `new` now names the old directory
    else:
        aside = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(target) + ".old-")
        os.rmdir(aside)
        os.rename(target, aside)
        os.rename(new, target)
        shutil.rmtree(aside)
    _fsync_path(parent, directory=True)
