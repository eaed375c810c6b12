"""Reading files someone else made, and writing files someone else will read, without surprises.

Every path the app reads comes from a user's config or folder, so it may name a FIFO (an open
that never returns), a device (``/dev/zero`` reads for ever), a directory, or a "small" text
file of gigabytes. Every file the app writes may be read while it is written, or be left
behind by a kill. The checks that cover those classes live here once, for every reader and
writer, rather than as a special case in each:

- :func:`open_regular` opens a path only when it is a regular file, without ever blocking on
  a FIFO (``O_NONBLOCK`` on the open, ``fstat`` on what was opened: no race with a swap);
- :func:`read_bounded` reads such a file only when it holds at most ``limit`` bytes, checking
  the size before reading and bounding the read itself (a file that grows meanwhile);
- :func:`atomic_write` writes to a temporary name beside the target and renames it into place,
  so a reader or a kill -9 sees the old file or the new one, never half of one.

Imports the standard library only (``import lucid_arch`` stays torch-free).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any, Callable, Optional

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class RefusedFile(ValueError):
    """A path the app will not read as it stands; ``str()`` is 'PATH is ...: the rule' (callers add the fix)."""

    def __init__(self, path: Any, reason: str):
        super().__init__(f"{path} {reason}")
        self.path, self.reason = Path(path), reason


class NotRegularFile(RefusedFile):
    """A FIFO, socket, device or directory where a file was expected."""


class FileTooLarge(RefusedFile):
    """A file larger than what it could honestly hold."""


def special_kind(path: Any) -> Optional[str]:
    """'a FIFO (named pipe)', 'a directory', ... for a path that exists and is not a regular file, else None.

    Symlinks are followed (a link to ``/dev/zero`` is a character device); a missing path is None.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return _kind(mode)


def _kind(mode: int) -> Optional[str]:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: Any) -> IO[bytes]:
    """``path`` opened for binary reading, or :class:`NotRegularFile` (never blocks: see the module doc).

    A missing or unreadable path raises the usual ``OSError``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind:
            raise NotRegularFile(path, f"is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Any, limit: int) -> bytes:
    """The bytes of the regular file ``path``: :class:`FileTooLarge` when it holds more than ``limit``."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise FileTooLarge(path, f"holds {size_text(size)}, over the limit of {size_text(limit)}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(path, f"grew past the limit of {size_text(limit)} while it was read")
    return data


def size_text(n: float) -> str:
    """Bytes for people: '512 B', '64.0 KiB', '6.0 GiB'."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}"
    raise AssertionError("unreachable")


def atomic_write(path: Any, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` for a temporary path beside ``path``, then rename it onto ``path``.

    The temporary name is hidden and carries the pid (two writers never share one); it is
    removed when ``write`` fails, so nothing partial is left under either name.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text_atomic(path: Any, text: str) -> Path:
    """``path.write_text(text)`` (UTF-8), whole or not at all."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
