"""``python -m tumorseg``: the same entry point as the ``tumorseg`` console script."""

from __future__ import annotations

from tumorseg.cli import main

if __name__ == "__main__":
    main()
