"""Which classes and functions a pickled checkpoint would import, read without unpickling it.

``torch.load(weights_only=True)`` refuses a pickle that needs code, but says so in words that
change between torch releases ("Unsupported global: GLOBAL x", "Unsupported class x",
"Trying to call reduce for unrecognized function x", ...). To tell such a file from a
truncated or corrupt one whatever the torch version, its opcodes are listed with
:mod:`pickletools` (which executes nothing) and the globals they name are compared with the
ones torch's weights-only loader accepts.

Reading is bounded: at most the first ``MAX_PICKLE_BYTES`` of the pickle are looked at.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import Iterable, Optional

MAX_PICKLE_BYTES = 64 << 20
_LEGACY_PICKLES = 5  # magic number, protocol, sys info, the object, storage keys
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}


def pickle_globals(file: Path) -> Optional[list[str]]:
    """``module.name`` of every global the pickle in ``file`` references, in order, once each.

    ``None`` when the file holds no readable pickle (truncated, corrupt, or not a pickle).
    Works for torch's zip format (``*/data.pkl``), its legacy format and plain pickles.
    """
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    return None
                with archive.open(member) as handle:
                    data = handle.read(MAX_PICKLE_BYTES)
            return _unique(_globals(io.BytesIO(data), pickles=1))
        with open(file, "rb") as handle:
            data = handle.read(MAX_PICKLE_BYTES)
        return _unique(_globals(io.BytesIO(data), pickles=_LEGACY_PICKLES))
    except (ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError):
        return None


def _globals(stream: io.BytesIO, pickles: int) -> list[str]:
    """Globals named by up to ``pickles`` consecutive pickles; raises if the first is unreadable."""
    found: list[str] = []
    for index in range(pickles):
        if index and stream.tell() >= len(stream.getbuffer()):
            break
        try:
            found += _one_pickle(stream)
        except (ValueError, EOFError):
            if index == 0:
                raise
            break  # later data is tensor bytes, not pickles
    return found


def _one_pickle(stream: io.BytesIO) -> list[str]:
    found: list[str] = []
    strings: list[str] = []  # recent string pushes (STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == "GLOBAL":  # protocol 0-3: "module name"
            found.append(".".join(str(arg).split(" ", 1)))
        elif name == "STACK_GLOBAL" and len(strings) >= 2:  # protocol 4+
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif name in _STRING_OPS:
            strings.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
        elif name in _PUT_OPS and strings:
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = strings[-1]
        elif name in _GET_OPS and int(arg) in memo:
            strings.append(memo[int(arg)])
        if name == "STOP":
            break
    return found


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def weights_only_allowed() -> set[str]:
    """Globals ``torch.load(weights_only=True)`` accepts: its own list plus any the user registered."""
    allowed: set[str] = set()
    try:
        from torch import _weights_only_unpickler

        allowed |= set(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # private API: fall back to the rebuild functions and tensor types below
        pass
    try:
        from torch.serialization import get_safe_globals

        for entry in get_safe_globals():
            obj = entry[0] if isinstance(entry, tuple) else entry
            allowed.add(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}")
    except ImportError:  # torch < 2.4
        pass
    return allowed


def needs_code(names: Iterable[str]) -> list[str]:
    """The globals among ``names`` that weights-only loading refuses: code the file would import and run."""
    allowed = weights_only_allowed()
    return [n for n in names if n not in allowed and not _tensor_machinery(n)]


def _tensor_machinery(name: str) -> bool:
    """Names every torch checkpoint uses (rebuilding tensors and storages, OrderedDict)."""
    return name.startswith(("torch._utils._rebuild", "torch.storage.", "torch._tensor._rebuild")) or name in {
        "collections.OrderedDict",
        "torch.Size",
        "torch.device",
    } or (name.startswith("torch.") and name.endswith("Storage"))
