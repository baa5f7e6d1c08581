"""Files read defensively: a file read whole must be a regular file (a FIFO, a device, /dev/zero behind a link are
refused at once, never waited for), its size is bounded before it is read, and an .npz member's shape and dtype are
read from its header before anything is inflated (a deflate bomb is refused within ``validate.memory_limit()``; an
object array is never unpickled). Every defect is one line: UsageError (the file is not what it must be) or
RunDirError (the file system refused the read).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib

import numpy as np

from . import validate
from .errors import UsageError, os_errors

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}  # fmt: skip


def read_bytes(path, what: str = "file", limit: int | None = None) -> bytes:
    """The content of the regular file ``path`` (a link to one is fine), read whole; UsageError in one line, at
    once, if it is a FIFO, a device, a directory ..., or larger than ``limit`` bytes (default: an eighth of
    ``validate.memory_limit()``, as parsing it takes several times its size). RunDirError if it cannot be read."""
    limit = validate.memory_limit()[0] // 8 if limit is None else limit
    with os_errors(path, "read"):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)  # a FIFO opens at once, and is refused below
    try:
        with os_errors(path, "read"):
            info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise UsageError(f"{what} {path} is {kind}, not a regular file")
        if info.st_size > limit:
            raise UsageError(f"{what} {path} is {validate.human_bytes(info.st_size)}, more than the "
                             f"{validate.human_bytes(limit)} this reader takes")  # fmt: skip
        chunks, size = [], 0
        with os_errors(path, "read"):
            while chunk := os.read(fd, min(2**24, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:  # it grew while read
                    raise UsageError(f"{what} {path} grew beyond {validate.human_bytes(limit)} while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_start(path, what: str = "file", size: int = 2**16) -> bytes:
    """The first ``size`` bytes of the regular file ``path`` (UsageError at once if it is not one)."""
    with os_errors(path, "read"):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    try:
        with os_errors(path, "read"):
            kind = stat.S_IFMT(os.fstat(fd).st_mode)
            if kind != stat.S_IFREG:
                raise UsageError(f"{what} {path} is {_KINDS.get(kind, 'not a regular file')}, not a regular file")
            return os.read(fd, size)
    finally:
        os.close(fd)


def read_npz(source, what: str = "archive") -> dict:
    """The arrays of an .npz (a path, or its bytes), name -> array, never unpickled; UsageError in one line if it
    is not a readable archive of .npy members, holds Python objects, or would take more memory than
    ``validate.memory_limit()`` once inflated: each member's shape and dtype come from its header first."""
    content = read_bytes(source, what, validate.memory_limit()[0]) if not isinstance(source, bytes) else source
    name = what if isinstance(source, bytes) else f"{what} {source}"
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [(info, _npy_header(archive, info, name)) for info in archive.infolist()]
            inflated = sum(size for _, (size, _) in members)
            validate.memory(name, inflated, {"arrays": inflated})
            for info, (size, offset) in members:  # after the memory check: a bomb is named as one
                if info.file_size < offset + size:
                    raise UsageError(f"{name}: member {info.filename!r} is cut short ({info.file_size - offset} of "
                                     f"{size} bytes)")  # fmt: skip
            arrays = {}
            for info, _ in members:
                with archive.open(info) as member:
                    arrays[info.filename.removesuffix(".npy")] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except UsageError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
            NotImplementedError, OverflowError) as error:  # fmt: skip
        raise UsageError(f"{name} is not a readable .npz archive ({type(error).__name__}: {error})") from None


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str):
    """(its data's size in bytes, where the data starts) of an .npy member, read from its header alone; UsageError
    for another format or Python objects."""
    if not info.filename.endswith(".npy"):
        raise UsageError(f"{name} holds {info.filename!r}, which is not an .npy array")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise UsageError(f"{name}: member {info.filename!r} has .npy format {version}, which is not read")
        offset = member.tell()
    if dtype.hasobject:
        raise UsageError(f"{name} holds pickled Python objects ({info.filename}), which are never loaded; "
                         "save plain numeric arrays")  # fmt: skip
    return int(np.prod(shape, dtype=object)) * dtype.itemsize, offset
