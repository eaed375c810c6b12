"""Seeds derived from several parts, identical on every machine and every Python run.

Each dataset chunk, split and epoch gets its own ``torch.Generator``, seeded from the parts
that name it (e.g. ``("shapes", seed, split, chunk)``). Then one chunk's images do not depend
on how many chunks come after it, a folder class's split does not move when another class
gains files, and a resumed run draws the same epoch order as an uninterrupted one.
Python's ``hash`` is salted per process, so the parts are mixed with splitmix64 instead.
"""

from __future__ import annotations

import zlib

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed (valid for ``torch.Generator.manual_seed``) mixing ints and strings."""
    state = 0
    for part in parts:
        if isinstance(part, str):
            value = zlib.crc32(part.encode("utf-8"))
        else:
            value = int(part) & _MASK64  # negative seeds wrap, as in torch
        state = _splitmix64(state ^ value)
    return state >> 1


def generator(*parts: int | str):
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` of ``parts``."""
    import torch

    return torch.Generator(device="cpu").manual_seed(derive_seed(*parts))
