"""What loading a checkpoint will allocate, read from its headers before anything is allocated.

A checkpoint's size on disk is not what loading it costs. A torch ``.pt`` is a zip whose
storages may be deflated (a 6 MB file inflating to 6 GiB), and a safetensors header may
honestly declare an 8 GiB tensor (a sparse file). Both loaders allocate what is declared and
find out later, so the declarations are read here instead, from the zip's central directory
or the safetensors header (neither inflates nor copies a byte of tensor data), and checked
against what the model can hold (:func:`model_budget`: its own weights, several times over
for optimizer state saved alongside) and the memory available. A safetensors file whose data
ends before its header says is called truncated, which it is.

A legacy (pre-zip) torch file stores its tensors raw, so its size on disk bounds what it holds.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Sequence

from ..safe_io import RefusedFile, open_regular, size_text

MODEL_FACTOR = 4  # weights + AdamW's two moments + an EMA copy, saved in one file
MODEL_SLACK = 64 << 20  # and room for a small model's metadata, heads of another class count, fp64 copies
MAX_SAFETENSORS_HEADER = 100 << 20  # safetensors' own limit on its JSON header
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class DeclaredSizeError(ValueError):
    """A checkpoint refused before loading; the message is the whole paragraph."""


@dataclass(frozen=True)
class Declared:
    """Bytes a file's tensors will take once loaded, and the largest one (by name, as the file calls it)."""

    total: int
    largest: str
    largest_bytes: int
    source: str  # where the figures come from, for the message


def model_budget(model_bytes: int) -> int:
    """The most tensor data a checkpoint of a model whose weights take ``model_bytes`` may declare."""
    return MODEL_FACTOR * model_bytes + MODEL_SLACK


def declared(file: Path) -> Optional[Declared]:
    """The declared tensor bytes of ``file`` (None for an extension no loader here reads).

    Raises :class:`DeclaredSizeError` for a special file or a safetensors header that is
    truncated or not one.
    """
    suffix = file.suffix.lower()
    if suffix != ".safetensors" and suffix not in TORCH_SUFFIXES:
        return None
    try:
        with open_regular(file) as f:
            size = os.fstat(f.fileno()).st_size
            if suffix == ".safetensors":
                return _safetensors(f, size, file)
            if zipfile.is_zipfile(f):
                return _zip(f)
            return Declared(size, file.name, size, "its size on disk: a legacy torch file holds its tensors raw")
    except RefusedFile as err:
        raise DeclaredSizeError(f"pretrained weights {err}; point model.pretrained at the weights file itself.") from None
    except zipfile.BadZipFile:
        return None  # torch's reader names the damage in its own words (lucid_arch.weights.files)


def _safetensors(f: IO[bytes], size: int, file: Path) -> Declared:
    def corrupt(why: str) -> DeclaredSizeError:
        return DeclaredSizeError(f"pretrained weights {file}: cannot be read as safetensors ({why}); the file is truncated "
                                 "or corrupt, or not safetensors at all. Copy or download it again.")

    head = f.read(8)
    if len(head) < 8:
        raise corrupt(f"{size} bytes, shorter than a safetensors header")
    (length,) = struct.unpack("<Q", head)
    if length > MAX_SAFETENSORS_HEADER:
        raise corrupt(f"its header declares {size_text(length)} of JSON, over safetensors' limit of "
                      f"{size_text(MAX_SAFETENSORS_HEADER)}")
    if 8 + length > size:
        raise corrupt(f"its header declares {size_text(length)} of JSON, but the file holds {size_text(size)}")
    try:
        header = json.loads(f.read(length))
        entries = {k: v["data_offsets"] for k, v in header.items() if k != "__metadata__"}
        spans = {k: (int(b), int(e)) for k, (b, e) in entries.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise corrupt("its header is not the JSON table of tensors safetensors writes") from None
    if any(not 0 <= b <= e for b, e in spans.values()):
        raise corrupt("its header gives a tensor a negative or reversed byte range")
    data = size - 8 - length
    end = max((e for _, e in spans.values()), default=0)
    if end > data:
        raise DeclaredSizeError(
            f"pretrained weights {file}: truncated: its header declares {size_text(end)} of tensor data, but the file holds "
            f"{size_text(data)} after the header (an interrupted download or copy). Copy or download it again.")
    name, (b, e) = max(spans.items(), key=lambda kv: kv[1][1] - kv[1][0], default=("", (0, 0)))
    return Declared(sum(e - b for b, e in spans.values()), name, e - b, "its safetensors header")


def _zip(f: IO[bytes]) -> Declared:
    f.seek(0)
    with zipfile.ZipFile(f) as archive:
        members = archive.infolist()
    largest = max(members, key=lambda m: m.file_size, default=None)
    return Declared(sum(m.file_size for m in members), largest.filename if largest else "", largest.file_size if largest else 0,
                    "the uncompressed sizes in its zip directory")


def check_declared_size(shown: Path, files: Sequence[Path], max_bytes: Optional[int]) -> None:
    """Refuse ``files`` (one checkpoint, or the shards of ``shown``) when their declared tensors exceed
    ``max_bytes`` or the memory available; see the module doc."""
    found = [d for d in (declared(f) for f in files) if d is not None]
    if not found:
        return
    total = sum(d.total for d in found)
    top = max(found, key=lambda d: d.largest_bytes)
    what = (f"pretrained weights {shown}: declares {size_text(total)} of tensor data ({top.source}; the largest entry, "
            f"{top.largest!r}, is {size_text(top.largest_bytes)})")
    if max_bytes is not None and total > max_bytes:
        raise DeclaredSizeError(
            f"{what}, more than this model can take ({size_text(max_bytes)}: {MODEL_FACTOR} times its own weights, room "
            f"for optimizer state saved with them, plus {size_text(MODEL_SLACK)}). Nothing was loaded. These are weights of "
            "a much larger model, or a damaged or hostile file: point model.pretrained at weights of this architecture.")
    limit, where = _memory_limit()
    if limit is not None and total > limit:
        raise DeclaredSizeError(
            f"{what}, more than {where} ({size_text(limit)}): loading it would exhaust memory. Nothing was loaded. Free "
            "memory, or load it on a machine that has more (LUCID_ARCH_MEMORY_LIMIT=off skips this check, a size such as "
            "64G sets the limit).")


def declared_excess(file: Path, max_bytes: Optional[int]) -> Optional[str]:
    """Why ``file`` (a run checkpoint's weights or trainer state) must not be loaded, in one clause; None when it may.

    A file whose header cannot be read is left to its loader, which names the damage.
    """
    try:
        found = declared(file)
    except DeclaredSizeError:
        return None
    if found is None:
        return None
    what = f"it declares {size_text(found.total)} of tensor data ({found.source})"
    if max_bytes is not None and found.total > max_bytes:
        return (f"{what}, more than a checkpoint of this model holds ({size_text(max_bytes)}: {MODEL_FACTOR} times its "
                f"weights plus {size_text(MODEL_SLACK)}); nothing was loaded, and a file that declares more is hostile or "
                "of another model")
    limit, where = _memory_limit()
    if limit is not None and found.total > limit:
        return f"{what}, more than {where} ({size_text(limit)}); nothing was loaded"
    return None


def _memory_limit() -> tuple[Optional[int], str]:
    import torch

    from ..modeling import memory_check

    return memory_check._limit(torch.device("cpu"))  # LUCID_ARCH_MEMORY_LIMIT, else the memory available now
