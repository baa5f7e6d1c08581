"""The README's examples are part of the contract: every Python block in it runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

RUNNER = """
import re, sys, warnings
warnings.simplefilter("error")
blocks = re.findall(r"```python\\n(.*?)```", open(sys.argv[1]).read(), re.S)
for i, block in enumerate(blocks):
    try:
        exec(compile(block, f"README block {i}", "exec"), {"__name__": "readme"})
    except Exception as error:
        raise SystemExit(f"README block {i} failed: {type(error).__name__}: {error}")
print(len(blocks))
"""


def test_every_python_block_in_the_readme_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(README)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "TINYGRAD_ACT_CACHE": str(tmp_path / "cache"),
            "PATH": "/usr/bin:/bin",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONPATH": str(README.parent),  # this checkout's package, not the one the interpreter installed
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert int(result.stdout.split()[-1]) >= 4


def test_the_readme_quick_start_is_exactly_the_two_commands():
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert [line for line in quick_start.strip().splitlines()] == ["make experiment DEPTH=20 ACT=sigmoid", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
