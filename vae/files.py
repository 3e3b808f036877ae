"""The one way this project writes a file a reader may see (checkpoints, benchmark results, the classifier,
precomputed scores): never half-written, never a surprise.

A unique temp file in the target's folder, named after the file and this process's id (so one left by a
process killed mid-write is recognised as stale: checkpoint.clean_stale_temp_files), readable by all as the
umask allows, flushed to disk, then moved into place with os.replace, or with os.link when an existing file
must not be replaced (two runs saving the same name at once: one gets FileExistsError).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"
# Read once: os.umask can only be read by setting it, which would race with threads writing at once.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object], overwrite: bool = True,
                     make_folder: bool = True) -> Path:
    """write(binary file) into a temp file beside `path`, then move it into place. Without `make_folder` a
    missing folder is an error (a mistyped destination), not a new folder."""
    path = Path(path)
    if make_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes the file private; these files are for every reader
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic like os.replace, but fails if the name was taken meanwhile
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
