"""Every script in ``examples/`` runs to the end with matplotlib's Agg backend and writes its pictures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("[0-9]*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_its_png(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("NUMBACONV_EXAMPLES_OUT", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{script.name} wrote no PNG"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png.name
    # every picture the script says it wrote is there, and nothing landed outside --out
    for name in re.findall(r"(\w+\.png)", result.stdout):
        assert (out / name).exists(), name
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
