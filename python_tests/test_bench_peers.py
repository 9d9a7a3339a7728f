"""bench/peers.py where no GPU is: its CPU table (l2norm, NumPy, FAISS where importable) and its
CUDA table's code on CPU tensors, each read back by bench/make_results.py as a device run's
peers.md would be."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_results", ROOT / "bench" / "make_results.py")
make_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_results)


def run_peers(*args):
    environment = dict(os.environ, L2NORM_FLA_PATH="")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "peers.py"), *args],
                            capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def peers_section(tmp_path, output):
    (tmp_path / "peers.md").write_text(output)
    text = make_results.render(tmp_path)
    start = text.index("\n## Peers")
    return text[start:text.find("\n## ", start + 1)]


def test_cpu_table(tmp_path):
    output = run_peers("--cpu", "--shapes", "32x128f32,1000x100bf16")
    rows = [line for line in output.splitlines() if line.startswith("| 32 x 128") or
            line.startswith("| 1000 x 100")]
    assert len(rows) == 2
    for row in rows:
        cells = make_results.split_row(row)
        assert len(cells) == 6 and "n/a" not in cells[2:5]
    section = peers_section(tmp_path, output)
    assert "| 1000 x 100 f32 |" in section and "Peers on the CPU" in section


def test_torch_table_on_cpu_tensors(tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed")
    output = run_peers("--torch-cpu", "--no-compile", "--shapes", "32x128bf16")
    rows = [make_results.split_row(line) for line in output.splitlines()
            if line.startswith("| 32 x 128 bf16")]
    assert [row[1] for row in rows] == ["fwd", "bwd"]
    for row in rows:
        assert len(row) == 8
        assert row[4] != "n/a" and row[5] != "n/a", row  # l2norm and F.normalize ran
        assert row[6] == "n/a"  # --no-compile
    section = peers_section(tmp_path, output)
    assert "| 32 x 128 bf16 | bwd |" in section
