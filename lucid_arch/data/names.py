"""Class names read from a user's files (``classes.txt``, class folder names): bounded, printable, distinct.

The names are copied into summary.json, inference.json, every report and terminal table, so a
list file is bounded before it is read (no file of gigabytes, or of one enormous line, is
copied anywhere), and each name must be something a table can show as it is: not a control
character (an escape sequence would rewrite the terminal that prints it, a right-to-left
mark would reorder what it shows), not longer than a name needs to be, and not another id's
name (two ids one name make every per-class figure ambiguous).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

from ..safe_io import FileTooLarge, RefusedFile, read_bounded

MAX_NAME_CHARS = 200
MAX_LIST_BYTES = 256 << 10  # 255 names of 200 characters need a fifth of it


def read_name_lines(file: Path) -> list[str]:
    """The lines of a name list (UTF-8, a byte-order mark allowed); raises RefusedFile, OSError or UnicodeDecodeError.

    Lines end at "\\n" only: Python's ``splitlines`` would also break at U+2028 or a form feed
    inside a name and silently shift every later id.
    """
    text = read_bounded(file, MAX_LIST_BYTES).decode("utf-8-sig")
    return [line.removesuffix("\r") for line in text.split("\n")]


def name_file_problem(err: BaseException, file: Path) -> str:
    """Why a name list could not be read, as the middle of a sentence about ``file``."""
    if isinstance(err, FileTooLarge):
        return f"{err.reason}; the names of 255 classes of {MAX_NAME_CHARS} characters each fit in far less"
    if isinstance(err, RefusedFile):
        return err.reason
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start + 1} cannot be decoded); save it as UTF-8"
    if isinstance(err, OSError):
        return f"cannot be read ({err.strerror or err})"
    return str(err)


def names_problem(names: Sequence[str], where: Callable[[int], str]) -> Optional[str]:
    """The first name that breaks a rule (see the module doc), said with ``where(index)``; None when all hold."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if len(name) > MAX_NAME_CHARS:
            return f"{where(k)} is {len(name):,} characters long; a class name has at most {MAX_NAME_CHARS}"
        bad = next((c for c in name if not c.isprintable()), None)
        if bad is not None:
            label = unicodedata.name(bad, "a control character")
            return (f"{where(k)} holds U+{ord(bad):04X} ({label}), which no table or terminal can show as it is; "
                    "use printable characters only")
        if name in seen:
            return f"{where(k)} repeats {name!r} ({where(seen[name])}); each class needs its own name"
        seen[name] = k
    return None
