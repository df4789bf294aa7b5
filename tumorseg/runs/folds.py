"""Cross-validation fold names: ``0`` .. ``NUM_FOLDS - 1`` and ``all`` (trained on every case).

One parser for every command that takes folds (``train``, ``predict``, ``slurm``, ``find-best``),
so ``0-4``, ``0,2``, ``-f 0 -f 1`` and ``all`` mean the same everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tumorseg.constants import NUM_FOLDS
from tumorseg.errors import TumorsegError

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_fold(text: str | int) -> int | str:
    """One fold: ``0`` .. ``NUM_FOLDS - 1`` as an int, or ``"all"``; else a one-line error."""
    value = str(text).strip().lower()
    if value == "all":
        return "all"
    if value.isdigit() and 0 <= int(value) < NUM_FOLDS:
        return int(value)
    choices = ", ".join(str(f) for f in range(NUM_FOLDS))
    problem = "is out of range" if value.isdigit() else "is not a fold"
    raise TumorsegError(f"fold {text!r} {problem}; use {choices} or all")


def parse_folds(values: str | Sequence[str] | None) -> list[str] | None:
    """Fold names from one or several values, each a fold, a comma list (``0,2``) or a range
    (``0-4``); duplicates are dropped, order kept. None when nothing was given.

    >>> parse_folds(["0-2", "4,all"])
    ['0', '1', '2', '4', 'all']
    """
    if values is None:
        return None
    items = [values] if isinstance(values, str) else list(values)
    folds: list[str] = []
    for value in items:
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            match = _RANGE.match(part)
            if match:
                low, high = int(match.group(1)), int(match.group(2))
                if low > high:
                    raise TumorsegError(f"folds {part!r}: empty range; use e.g. 0-4")
                names = [str(f) for f in range(low, high + 1)]
            elif part.lower() == "all" or part.isdigit():
                names = [part.lower()]
            else:
                raise TumorsegError(f"fold {part!r} is not a fold; use e.g. 0-4, 0,2 or all")
            for name in names:
                if name != "all" and int(name) >= NUM_FOLDS:
                    raise TumorsegError(
                        f"fold {name!r} is outside 0-{NUM_FOLDS - 1}; use e.g. 0-4, 0,2 or all"
                    )
                if name not in folds:
                    folds.append(name)
    return folds or None
