"""Reading a checkpoint: which file a path names, and its tensors, without running code from it.

What a path may be:
- a ``.safetensors`` file, or a torch ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` file (read with
  ``weights_only=True``: a pickle that needs code is refused, never run, and called that);
- a training run directory: its ``model.safetensors``, else the newest
  ``checkpoints/step_<global step>/model.safetensors``;
- a Hugging Face model directory: ``config.json`` beside ``model.safetensors``,
  ``pytorch_model.bin`` or a sharded ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..runs import RunError, find_run, step_dirs
from ..safe_io import RefusedFile, read_bounded
from .convert import unwrap_state_dict
from .declared_size import DeclaredSizeError, check_declared_size
from .pickle_scan import needs_code, pickle_globals

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
RUN_WEIGHTS = "model.safetensors"  # what a training run writes, at its root and in each step directory
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
SHARD_INDEX_SUFFIX = ".index.json"
MAX_INDEX_BYTES = 64 << 20  # a shard index lists tensor names: ~100 KiB for billions of parameters
_SHOWN = 5  # names listed in an error
ACCEPTS = (
    "a .safetensors or .pth/.pt/.bin/.ckpt file, a training run directory holding "
    f"{RUN_WEIGHTS} or checkpoints/step_*/{RUN_WEIGHTS}, or a Hugging Face model directory "
    f"({HF_CONFIG} + model.safetensors or pytorch_model.bin)"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely, or that does not fit the model."""


def resolve_checkpoint(path: Any, checkpoint: str = "last") -> Path:
    """The weights file ``path`` names: the file itself, the one a directory holds, or the one of a
    training run's that ``checkpoint`` ('last' or 'best') selects (lucid_arch.runs)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"pretrained weights {p}: no such file or directory; check model.pretrained, which takes {ACCEPTS}."
        )
    if not p.is_dir():
        return p
    if (p / HF_CONFIG).is_file():
        for name in HF_WEIGHTS:
            if (p / name).is_file():
                return p / name
    else:
        try:
            run = find_run(p)
        except RunError:  # weights without a run's config (copied by hand): taken as the files say
            run = None
        if run is not None:
            try:
                return run.weights(checkpoint)
            except RunError as err:
                raise CheckpointError(str(err)) from None
        if (p / RUN_WEIGHTS).is_file():
            return p / RUN_WEIGHTS
        if step_dirs(p):
            return step_dirs(p)[-1] / RUN_WEIGHTS
    raise FileNotFoundError(
        f"pretrained weights {p}: the directory holds no weights (neither {RUN_WEIGHTS} nor "
        f"checkpoints/step_*/{RUN_WEIGHTS}, nor a Hugging Face {HF_CONFIG} with model.safetensors or "
        "pytorch_model.bin); point model.pretrained at the weights file itself or at such a directory."
    )


def hf_config_path(weights: Path) -> Optional[Path]:
    """The ``config.json`` of the Hugging Face directory ``weights`` came from, if it did."""
    config = weights.parent / HF_CONFIG
    return config if weights.name in HF_WEIGHTS and config.is_file() else None


def read_checkpoint(path: Any, max_bytes: Optional[int] = None) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file or directory, on the CPU, trainer wrappers removed.

    Keys keep the file's layout (see :func:`lucid_arch.weights.convert_state_dict`). Before
    anything is allocated, the tensor bytes the file declares are checked against ``max_bytes``
    (what the model can hold: :func:`model_budget`) and the memory available
    (:mod:`lucid_arch.weights.declared_size`).
    """
    file = resolve_checkpoint(path)
    files = _shards(file) if file.name.endswith(SHARD_INDEX_SUFFIX) else [file]
    try:
        check_declared_size(file, files, max_bytes)
    except DeclaredSizeError as err:
        raise CheckpointError(str(err)) from None
    if file.name.endswith(SHARD_INDEX_SUFFIX):
        raw: dict[str, Any] = {}
        for shard in files:
            raw.update(_state_dict(_read_file(shard), shard))
        return _state_dict(raw, file)
    return _state_dict(_read_file(file), file)


def _read_file(file: Path) -> Any:
    suffix = file.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return _read_safetensors(file)
    if suffix in TORCH_SUFFIXES:
        return _read_torch(file)
    raise CheckpointError(
        f"pretrained weights {file}: unknown extension {file.suffix or '(none)'!r}; expected .safetensors, "
        f"or {'/'.join(TORCH_SUFFIXES)} for a torch.save file. Rename the file to the extension of its format."
    )


def _shards(index: Path) -> list[Path]:
    """The shard files a Hugging Face ``*.index.json`` names; each must sit beside it."""
    try:
        weight_map = json.loads(read_bounded(index, MAX_INDEX_BYTES))["weight_map"]
        names = sorted(set(weight_map.values()))
    except RefusedFile as err:
        raise CheckpointError(f"pretrained weights {err}: not a shard index as a model hub writes it (a few hundred KiB of "
                              "JSON); download the model's index file again.") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"pretrained weights {index}: not a shard index ({err}); expected {{\"weight_map\": {{key: file}}}}.") from None
    bad = [n for n in names if not isinstance(n, str) or Path(n).name != n]
    missing = [n for n in names if n not in bad and not (index.parent / n).is_file()]
    if bad or missing:
        raise CheckpointError(
            f"pretrained weights {index}: shard files {', '.join(map(str, (bad + missing)[:_SHOWN]))} are "
            "missing or not plain names in the index's own directory; download every shard beside the index."
        )
    return [index.parent / n for n in names]


def _read_safetensors(file: Path) -> Any:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except OSError:
        raise
    except Exception as err:  # safetensors' own SafetensorError: bad header, truncated data
        raise CheckpointError(
            f"pretrained weights {file}: cannot be read as safetensors ({err}); the file is truncated or corrupt, "
            "or not safetensors at all. Copy or download it again."
        ) from err


def _read_torch(file: Path) -> Any:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # UnpicklingError (needs code, or damaged), RuntimeError from the zip reader, EOFError
        code = code_it_needs(file, err)
        if code:
            raise _needs_code_error(file, code) from None
        raise _unreadable(file, err) from None


def code_it_needs(file: Path, err: Exception) -> list[str]:
    """The classes or functions the file's pickle imports that weights-only loading refuses ([] if none)."""
    names = pickle_globals(file)
    if names is None:  # no readable pickle: damaged, whatever torch said
        return []
    refused = needs_code(names)
    if refused or not isinstance(err, pickle.UnpicklingError):
        return refused
    # A readable pickle whose globals all look allowed, refused anyway: name what torch names.
    said = re.search(r"(?:GLOBAL|global|class|function)\s+([\w.]+\.[\w]+)", str(err))
    return [said.group(1)] if said else []


def _needs_code_error(file: Path, code: list[str]) -> CheckpointError:
    shown = ", ".join(code[:3]) + (f" and {len(code) - 3} more" if len(code) > 3 else "")
    return CheckpointError(
        f"pretrained weights {file}: refused to load: the pickle needs code to rebuild {shown} (a pickled model "
        "object, a class from a training script, or something worse), and pretrained weights are read with "
        "torch.load(weights_only=True), which never runs code from a file. If you trust the file, convert it once: "
        "obj = torch.load(PATH, weights_only=False), take its state dict (obj.state_dict() for a module, or the dict "
        "of tensors inside), save it with safetensors.torch.save_file(state_dict, 'weights.safetensors') and point "
        "model.pretrained there."
    )


def _unreadable(file: Path, err: Exception) -> CheckpointError:
    detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(err))
    first_sentence = re.split(r"(?<=\.)\s", str(err).strip(), maxsplit=1)[0].rstrip(".")
    reason = detail.group(1) if detail else (first_sentence or type(err).__name__)
    return CheckpointError(
        f"pretrained weights {file}: cannot be read as a torch checkpoint ({reason}); the file is truncated or "
        "corrupt, or not a torch.save file. Copy or download it again (a safetensors file needs the .safetensors "
        "extension)."
    )


def _state_dict(raw: Any, file: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise CheckpointError(
            f"pretrained weights {file}: holds a {type(raw).__name__}, not a state dict (parameter names mapped to "
            "tensors); save model.state_dict() instead."
        )
    sd = unwrap_state_dict(raw)
    others = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if others or not sd:
        what = f"its entries {', '.join(others[:_SHOWN])} are not tensors" if others else "it is empty"
        raise CheckpointError(
            f"pretrained weights {file}: not a state dict ({what}); expected parameter names mapped to tensors, "
            'optionally inside {"model": ...} or {"state_dict": ...}.'
        )
    return sd
