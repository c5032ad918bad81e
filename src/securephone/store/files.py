"""The shell's one atomic file writer: configuration, users, certificates, keys.

Readers (and a crash, or a power cut) see either the old file or the new one, never half
of it: the data goes to a temporary file in the same directory (so that the rename stays
within one file system), is flushed and fsynced, renamed over the target with
``os.replace`` (POSIX ``rename(2)``: atomic), and the directory is fsynced so that the
rename itself is durable. The mode is set on the temporary file before any data is
written, so a secret is never readable by others, not even for a moment, whatever the umask.

The core (sip, sdp, media) never writes files; it hands bytes to the shell, which writes
them here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path | str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``) in one step.

    The directory must exist (FileNotFoundError otherwise). When anything fails the old
    file stays as it was and no temporary file is left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; file systems that cannot fsync a directory are skipped."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
