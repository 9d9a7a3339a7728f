"""The package as users get it: `python -m build --sdist` of the source tree, a wheel built from
that sdist (so the sdist holds everything the build needs), installed into a fresh virtual
environment and imported there. It builds the whole project again (about two minutes on two
cores), so it runs as its own CTest test (l2norm_python_packaging, L2NORM_PACKAGING_TEST=1) and
the shared pytest run of python_tests/ reports it skipped. No network: the build tools come from
the running interpreter (--no-isolation), as on a machine without a package registry."""

import os
import pathlib
import subprocess
import sys
import tarfile

import pytest

SOURCE = pathlib.Path(os.environ.get("L2NORM_SOURCE_DIR", pathlib.Path(__file__).parent.parent))


def run(*command, cwd=None):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.mark.skipif(os.environ.get("L2NORM_PACKAGING_TEST") != "1",
                    reason="runs as the CTest test l2norm_python_packaging (L2NORM_PACKAGING_TEST=1)")
def test_sdist_wheel_fresh_venv(tmp_path):
    for module in ("build", "scikit_build_core", "nanobind", "venv"):
        pytest.importorskip(module, reason=f"{module} is needed to build the package offline")
    run(sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(SOURCE))
    (sdist,) = tmp_path.glob("l2norm-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
    root = names[0].split("/")[0]
    for needed in ("LICENSE", "pyproject.toml", "CMakeLists.txt", "python/src/module.cpp", "src/CMakeLists.txt"):
        assert f"{root}/{needed}" in names
    assert not any(name.startswith(f"{root}/build") for name in names)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")

    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w",
        str(tmp_path / "wheels"), str(tmp_path / root))
    (wheel,) = (tmp_path / "wheels").glob("l2norm-*.whl")

    # A fresh environment with nothing but the wheel; NumPy (the one dependency) comes from the
    # running interpreter's site-packages, so the install needs no registry.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    python = str(venv / "bin" / "python")
    # --system-site-packages reaches the base interpreter's packages only; where the running
    # interpreter is itself a virtual environment, NumPy comes from its site-packages by a .pth.
    import numpy
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    pathlib.Path(site, "l2norm_test_numpy.pth").write_text(
        str(pathlib.Path(numpy.__file__).parent.parent) + "\n")
    run(python, "-m", "pip", "install", "--no-index", "--no-deps", str(wheel))
    out = run(python, "-c", """
import importlib.metadata, pathlib, sys
import numpy as np, l2norm
assert pathlib.Path(l2norm.__file__).is_relative_to(sys.prefix), l2norm.__file__
package = pathlib.Path(l2norm.__file__).parent
assert (package / "_core.pyi").exists() and (package / "py.typed").exists()
metadata = importlib.metadata.metadata("l2norm")
assert metadata["License-Expression"] == "Apache-2.0", metadata["License-Expression"]
print(l2norm.__version__, l2norm.normalize(np.array([[3, 4]], np.float32)).tolist())
""", cwd=tmp_path)
    assert "[[0.6" in out and "0.8" in out
