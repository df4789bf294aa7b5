from __future__ import annotations

import pytest

from tumorseg.constants import NUM_FOLDS
from tumorseg.errors import TumorsegError
from tumorseg.runs.folds import parse_fold, parse_folds


def test_one_parser_for_lists_ranges_and_repeats() -> None:
    assert parse_folds("0-4") == [str(f) for f in range(NUM_FOLDS)]
    assert parse_folds(["0,2", "1", "2", "all"]) == ["0", "2", "1", "all"]
    assert parse_folds(["1-2", " 4 "]) == ["1", "2", "4"]
    assert parse_folds(None) is None
    assert parse_folds([]) is None
    assert parse_fold("ALL") == "all"
    assert parse_fold(3) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [("5", "outside 0-4"), ("0-7", "outside 0-4"), ("x", "fold 'x'"), ("3-1", "empty range")],
)
def test_bad_folds_are_one_line_errors(value: str, message: str) -> None:
    with pytest.raises(TumorsegError, match=message):
        parse_folds(value)
    with pytest.raises(TumorsegError, match="out of range"):
        parse_fold(str(NUM_FOLDS))
