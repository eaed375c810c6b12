"""What a bad config is, for the person who wrote it: a Problem per key, a ConfigError holding them all.

Every layer that finds a config wrong (the schema checks, the section checks, the task schemas,
Hydra's composition errors, the memory check) reports in these terms, so the app prints one
paragraph naming every offending key whatever found it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    where: Optional[str] = None  # the file and line, or the override, that set the key

    def __str__(self) -> str:
        return f"{self.message} (set in {self.where})" if self.where else self.message


class ConfigError(ValueError):
    """A model config that cannot be built; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem], source: Optional[str] = None):
        self.problems = list(problems)
        self.source = source
        where = f" '{source}'" if source else ""
        if all(p.key == "overrides" for p in self.problems):
            subject = "overrides"
        elif all(p.key.startswith("model") for p in self.problems):
            subject = "model config"
        else:
            subject = "config"
        if len(self.problems) == 1:
            text = f"Invalid {subject}{where}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"Invalid {subject}{where} ({len(self.problems)} problems):\n{lines}"
        super().__init__(text)


def suggest(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean x or y?)' for the nearest candidates, or ''."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
