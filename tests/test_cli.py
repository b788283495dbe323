"""The ``numbaconv`` command: each subcommand runs, bad arguments exit 2, a missing ``demo`` extra exits 1 naming
the pip command, and the "compiling kernels" notice is said once, only when a kernel is compiled."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from numbaconv import cli

REPO = Path(__file__).resolve().parent.parent
EXPLAIN = ["explain", "--input", "8,64,56,56", "--weight", "64,64,3,3", "--padding", "1"]


def run_module(*args: str) -> subprocess.CompletedProcess:
    """``python -m numbaconv ARGS`` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "numbaconv", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_explain_describes_the_winograd_choice(capsys):
    assert cli.main(EXPLAIN) == 0
    out = capsys.readouterr().out
    assert out.startswith("conv2d input (8, 64, 56, 56) weight (64, 64, 3, 3) -> output (8, 64, 56, 56)")
    assert re.search(r"^forward: winograd ", out, re.M)
    assert "winograd F(4x4,3x3)" in out and "grad_input:" in out and "grad_weight:" in out


def test_explain_options(capsys):
    args = [
        "explain",
        "--input",
        "2,8,17,17",
        "--weight",
        "8,4,3,3",
        "--stride",
        "2",
        "--padding",
        "1,0",
        "--dilation",
        "1",
        "--groups",
        "2",
        "--dtype",
        "float64",
        "--padding-mode",
        "reflect",
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "-> output (2, 8, 9, 8); stride (2, 2), dilation (1, 1), groups 2; float64" in out
    assert "winograd F(" not in out  # stride 2: not a candidate


def test_python_dash_m_runs_the_command():
    result = run_module(*EXPLAIN)
    assert result.returncode == 0, result.stderr
    assert "forward: winograd" in result.stdout


def test_info_runs(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for field in ("numbaconv:", "numba:", "numpy:", "CPU features:", "threads:", "threading layer:", "JIT cache:"):
        assert re.search(rf"^{field}\s+\S", out, re.M), field
    assert re.search(r"^kernels:\s+\d+ of \d+ cached", out, re.M)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["--bogus"],
        ["explain"],
        ["explain", "--input", "8,64,56,56"],
        ["explain", "--input", "8,a,56,56", "--weight", "64,64,3,3"],
        ["explain", "--input", "8,64,56,56", "--weight", "64,64,3,3", "--padding", "1,2,3"],
        ["explain", "--input", "8,64,56,56", "--weight", "64,3,3,3"],  # numbaconv rejects: 64 channels, not 3
        ["explain", "--input", "8,64,56,56", "--weight", "64,64,3,3", "--dtype", "float16"],
        ["demo", "--epochs", "0"],
        ["demo", "--epochs", "many"],
        ["bench", "--shapes", "no_such_shape"],
        ["info", "--cold"],
    ],
)
def test_bad_arguments_print_usage_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: numbaconv" in err and "error:" in err


def test_missing_demo_extra_names_the_pip_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # "import tqdm" now raises ImportError
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert 'pip install "numbaconv[demo]"' in err and "tqdm" in err
    assert not (tmp_path / "demo").exists()


def test_demo_writes_pictures_and_checkpoint(tmp_path, capsys):
    for module in ("matplotlib", "tqdm", "sklearn"):
        pytest.importorskip(module)
    import numbaconv
    from numbaconv import demo

    out = tmp_path / "demo"
    assert cli.main(["demo", "--epochs", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"test accuracy: \d{1,3}\.\d\d%", lines[-1])
    assert float(lines[-1].split()[-1][:-1]) > 50  # one epoch is well past chance (10%)
    for name in demo.PICTURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    checkpoint = numbaconv.load(out / demo.CHECKPOINT)
    assert checkpoint["epoch"] == 1
    model = demo.DigitsCNN()
    model.load_state_dict(checkpoint["model"])
    assert f"{100 * checkpoint['test_accuracy']:.2f}%" in lines[-1]


def test_bench_prints_the_table(capsys):
    assert cli.main(["bench", "--quick", "--shapes", "cifar_c3", "--no-torch", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "numbaconv algorithm: fwd | grad_in | grad_w" in out
    row = next(line for line in out.splitlines() if line.startswith("cifar_c3"))
    assert re.search(r"cifar_c3\s+\|\s+\d+\.\d+\s+-\s+-\s+\|", row), row


def test_compile_notice_is_said_once_and_only_for_a_compile(monkeypatch):
    from numba.core import event

    kernel = cli.kernel_dispatchers()[0]
    said: list[str] = []
    monkeypatch.setattr(cli, "is_cached", lambda k: True)
    with cli.compile_notice(said.append):
        assert said == []  # everything cached: nothing to say up front
        for _ in range(2):  # what Numba broadcasts on a cache miss, just before it compiles
            event.start_event("numba:compile", data={"dispatcher": kernel, "args": (), "return_type": None})
            event.end_event("numba:compile", data={"dispatcher": kernel, "args": (), "return_type": None})
    assert said == [cli.COMPILE_NOTICE]

    said.clear()
    monkeypatch.setattr(cli, "is_cached", lambda k: False)
    with cli.compile_notice(said.append):
        assert said == [cli.COMPILE_NOTICE]  # a fresh cache: said before anything runs


def test_kernel_inventory():
    kernels = cli.kernel_dispatchers()
    names = {k.py_func.__name__ for k in kernels}
    assert {"forward", "grad_weight", "im2col", "col2im", "max_pool_forward", "affine", "tile_transform"} <= names
    directories, cached, total = cli.cache_report()
    assert total == len(kernels) and 0 <= cached <= total and directories
