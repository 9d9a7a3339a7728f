"""The README's Python examples, run as they are written: every ```python block that follows the
marker line below runs in a fresh interpreter (so the documentation cannot rot, as the C++ example
does through the readme_example test)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- python_tests/test_readme_python.py runs this block -->"


def marked_blocks():
    text = README.read_text()
    pattern = re.escape(MARKER) + r"\s*\n```python\n(.*?)\n```"
    return re.findall(pattern, text, flags=re.DOTALL)


def test_the_readme_has_a_numpy_and_a_torch_example():
    blocks = marked_blocks()
    assert len(blocks) == 2 and "import numpy" in blocks[0] and "import torch" in blocks[1]
    assert README.read_text().count(MARKER) == len(blocks)  # each marker has its python block


@pytest.mark.parametrize("index", range(len(marked_blocks())))
def test_readme_example_runs(index, tmp_path):
    code = marked_blocks()[index]
    if "import torch" in code:
        pytest.importorskip("torch", reason="PyTorch not installed")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-4000:]
    if "import torch" in code:
        assert "torch.Size([2, 16, 768])" in result.stdout
    else:
        assert result.stdout.strip().endswith("True"), result.stdout
