"""Short sweep job directory names: the job's number, its model and a hash of its overrides.

Hydra names a sweep's jobs ``0``, ``1`` ... by default, and keeps each job's overrides in its
``.hydra/overrides.yaml`` (the app's summary.json repeats them, and sweep.md shows them beside
the directory). Names made of the overrides themselves grow past what a terminal, ``ls`` or a
filesystem shows (a search's stage lists, cut at some length, end mid-key), so a job here is
``<num>_<model>_<hash>``: ``3_pvt_v2_b1_5e0c1a``. The model is the one the job builds (its
``model=`` choice, given or default) and the hash six hex digits of its overrides: jobs with the
same overrides share it, in this sweep or another, so equal jobs are found with ``ls *_5e0c1a``.
A job without overrides is ``<num>_<model>``.
"""

from __future__ import annotations

import hashlib
import re

HASH_DIGITS = 6
MAX_MODEL = 60  # a model name from a user's config dir, kept short all the same


def overrides_hash(override_dirname: object) -> str:
    return hashlib.sha1(str(override_dirname or "").encode("utf-8")).hexdigest()[:HASH_DIGITS]


def job_dir_name(num: object, override_dirname: object, model: object = "") -> str:
    label = re.sub(r"[^A-Za-z0-9._-]", "-", str(model or ""))[:MAX_MODEL]  # a file name, whatever the choice holds
    parts = [str(num), *([label] if label else []), *([overrides_hash(override_dirname)] if override_dirname else [])]
    return "_".join(parts)
