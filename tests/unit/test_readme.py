"""The README's Python example runs as written (in a fresh interpreter, as a user would)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README holds exactly one Python example"
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = proc.stdout.strip().splitlines()[:2]
    cloud, edge = (float(v) for v in first.split())
    assert 0.3 < cloud and 0.3 < edge  # 2 experiences of 5 classes: chance is 0.2 after one
    assert second.startswith("[[")  # the matrix rows


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    text = "\n".join(lines)
    assert "make run" in text and "make test" in text
    for page in re.findall(r"\]\((docs/[^)#]+)", text):  # every linked page exists
        assert (ROOT / page).is_file(), page
