"""Readable job directory names for sweeps.

Hydra's ``override_dirname`` keeps brackets and commas (``model.depths=[3,4,18,3]``), which
shells and cluster tools mangle. Jobs are named ``<num>_<overrides>``, with list items joined by
dashes; conf/hydra/default.yaml separates overrides by ``__``. For example
``2_model=pvt_v2_b1__model.depths=2-2-2-2``.
"""

from __future__ import annotations

import re

MAX_NAME = 120  # well under filesystems' 255-byte limit


def job_dir_name(num: object, override_dirname: object) -> str:
    text = re.sub(r"[\[\]()'\"{}\s]", "", str(override_dirname or ""))  # brackets, quotes, spaces
    text = re.sub(r"[,/:\\]", "-", text)  # list items, paths, dict items
    return (f"{num}_{text}" if text else str(num))[:MAX_NAME]
