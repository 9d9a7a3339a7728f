"""Under CTest (L2NORM_CLI names the build's CLI) the Python package is imported from the same
build tree (<build>/python), so the tests check the module just built, never a stale install.
Elsewhere an installed l2norm is used. PYTHONPATH is set too, for worker processes."""

import os
import pathlib
import sys

_cli = os.environ.get("L2NORM_CLI")
if _cli:
    _package_root = pathlib.Path(_cli).resolve().parent.parent / "python"
    if (_package_root / "l2norm").is_dir():
        sys.path.insert(0, str(_package_root))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_package_root), os.environ.get("PYTHONPATH")]))
