#!/usr/bin/env python3
"""CTest entry for the Python tests (every test_*.py beside this file: the NumPy round trips of the
CLI, the results generator): run_pytest.py PATH_TO_L2NORM_BINARY.
Exits 77 (which CTest reports as skipped) when numpy or pytest is not installed."""

import os
import sys

SKIPPED = 77


def main() -> int:
    try:
        import numpy  # noqa: F401
        import pytest
    except ImportError as error:
        print(f"skipped: {error} (pip install numpy pytest)")
        return SKIPPED
    os.environ["L2NORM_CLI"] = os.path.abspath(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    return pytest.main(["-q", "-p", "no:cacheprovider", here])


if __name__ == "__main__":
    sys.exit(main())
