"""The sandboxed half of a review: compose reviewed model files, in a child process.

:mod:`lucid_arch.diff.sandbox` starts this module with an empty environment, CPU-time,
memory and file-size limits, and a private temporary working directory. It reads one JSON
request on stdin (the model files' bytes, and which variants to compose with which
overrides) and writes one JSON answer on stdout. It never opens the reviewed tree: the parent
sends the bytes. It imports no torch.

Each variant is composed by the same :func:`~lucid_arch.config.compose.load_config` the app
uses, against a temporary config root holding a trusted primary config and only the model
files of the variant's chain, each checked by :mod:`lucid_arch.config.model_files` first. The
reviewed tree's own ``config.yaml`` (which could set ``hydra.searchpath`` and make Hydra import
a module) is never read.

Files are named ``@reviewed-tree/model/NAME.yaml`` in an answer (:func:`relabel` gives them
their labels in the parent), and an answer whose chain resolved lists the chain's file names:
such an answer depends on those files' bytes and the request alone, so the parent can reuse it
for a snapshot where those bytes are the same.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from ..config.checks import ConfigError, Problem, to_plain_dict
from ..config.compose import compose_model
from ..config.model_files import ModelFile, parse_model_file, quote, resolve_chain
from ..config.provenance import provenance

TREE_MARK = "@reviewed-tree"  # provenance's display root inside the worker; mapped back to real labels
PRIMARY = "defaults:\n  - model: {name}\n  - _self_\n"


def _problem_dicts(problems: list[Problem]) -> list[dict[str, Optional[str]]]:
    return [{"key": p.key, "message": p.message, "where": p.where or None} for p in problems]


def relabel(answer: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """``answer`` with each ``@reviewed-tree/model/NAME.yaml`` in its chain, sources and problems' places named ``labels[NAME]``."""
    marks = [(f"{TREE_MARK}/model/{n}.yaml", label) for n, label in labels.items()]

    def text(value: Any) -> Any:
        if isinstance(value, str) and TREE_MARK in value:
            for mark, label in marks:
                value = value.replace(mark, label)
        return value

    out = copy.deepcopy(answer)  # each side gets its own, however often an answer is reused
    if isinstance(answer.get("chain"), list):
        out["chain"] = [text(c) for c in answer["chain"]]
    if isinstance(answer.get("sources"), dict):
        out["sources"] = {k: text(v) for k, v in answer["sources"].items()}
    if isinstance(answer.get("problems"), list):
        out["problems"] = [{**p, "where": text(p.get("where"))} if isinstance(p, dict) else p for p in answer["problems"]]
    return out


def compose_one(files: dict[str, bytes], refused: dict[str, str], labels: dict[str, str], request: dict[str, Any]) -> dict[str, Any]:
    """One variant of the snapshot with its overrides: config, problems, chain, per-field sources and the chain's files."""
    name, overrides = request["name"], list(request.get("overrides", ()))
    parsed: dict[str, Optional[ModelFile]] = {}

    def load(n: str) -> Optional[ModelFile]:
        if n not in parsed:
            if n in refused:
                parsed[n] = ModelFile(n, labels.get(n, n), problems=[Problem("model", refused[n])])
            else:
                parsed[n] = parse_model_file(files[n], n, labels[n]) if n in files else None
        return parsed[n]

    chain, problems = resolve_chain(name, load)
    answer: dict[str, Any] = {"config": None, "problems": [], "chain": [], "sources": {}}
    if problems:
        answer["problems"] = _problem_dicts(problems)
        return answer
    answer["files"] = sorted(chain)
    with tempfile.TemporaryDirectory(prefix="tree_") as tmp:
        root = Path(tmp)
        (root / "model").mkdir()
        (root / "config.yaml").write_text(PRIMARY.format(name=name))
        for n in chain:
            data = files[n]
            if n == name and request.get("set_name") and "name" not in chain[n].data:
                # a lone file names the variant after itself, as load_config does for a YAML path
                data = data.rstrip(b"\n") + f"\nname: '{request['set_name']}'\n".encode()
            (root / "model" / f"{n}.yaml").write_bytes(data)
        try:
            prov = provenance(name, overrides, root, TREE_MARK)
        except ConfigError as err:  # the defaults chain itself cannot be resolved
            answer["problems"] = _problem_dicts(err.problems)
            return answer
        answer["chain"] = prov.chain
        answer["sources"] = prov.values
        cfg, found = compose_model(name, overrides, config_root=root)
        if found:  # where each key was set, in the reviewed tree rather than this temporary one
            answer["problems"] = _problem_dicts([dataclasses.replace(p, where=prov.where(p.key)) for p in found])
        else:
            answer["config"] = to_plain_dict(cfg)
    return answer


def limit(cpu_seconds: int, memory_bytes: int, file_bytes: int, open_files: int) -> None:
    """Cap this process's CPU time, address space, written file size and open files; no core dumps."""
    try:
        import resource
    except ImportError:  # Windows: no POSIX limits
        return
    for kind, value in (
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_AS, memory_bytes),
        (resource.RLIMIT_FSIZE, file_bytes),
        (resource.RLIMIT_NOFILE, open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            soft, hard = resource.getrlimit(kind)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError):  # a platform without that limit (RLIMIT_AS on macOS)
            pass


def main(**limits: int) -> None:
    limit(**limits)
    try:
        request = json.load(sys.stdin)
        files = {n: base64.b64decode(v) for n, v in request["files"].items()}
        results = []
        for item in request["requests"]:
            try:
                results.append(compose_one(files, request["refused"], request["labels"], item))
            except MemoryError:
                results.append({"error": "ran out of the memory it may use"})
            except RecursionError:
                results.append({"error": "nests too deeply"})
            except Exception as err:  # noqa: BLE001 - reported as the side's problem, never a traceback
                results.append({"error": f"failed: {type(err).__name__}: {quote(err, 200)}"})
        json.dump({"results": results}, sys.stdout)
    except MemoryError:
        sys.stdout.write(json.dumps({"error": "ran out of the memory it may use"}))


if __name__ == "__main__":  # pragma: no cover - started by sandbox.py
    main()
