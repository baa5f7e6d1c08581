"""README.md's sample outputs, from real runs: ``make readme`` (``python experiments/readme.py``).

Each sample sits in README.md between ``<!-- sample: COMMAND -->`` and ``<!-- /sample -->`` as a fenced block, and
is what ``python -m tinygrad_act COMMAND`` prints in a 100-column terminal (run here in a fresh working directory,
so the run directory is the one a user gets, ``runs/<name>/``). ``make readme`` writes them; tests/test_readme.py
fails when README.md holds another text than the command prints, the run's wall time aside (``masked``).
The test count between ``<!-- count: tests -->`` and ``<!-- /count -->`` is pytest's, written by ``make readme``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COLUMNS = 100  # the README's terminal
# The commands whose output README.md shows: the make command a reader types -> the program's arguments.
SAMPLES = {
    "make experiment DEPTH=20 ACT=sigmoid": ["experiment", "--depth", "20", "--act", "sigmoid"],
    "make experiment DEPTH=20 ACT=relu INIT=he_normal": [
        "experiment",
        "--depth",
        "20",
        "--act",
        "relu",
        "--init",
        "he_normal",
    ],  # fmt: skip
}
# A sample block: the marker, a fenced block (the text, each line ending in a newline), the end marker.
SAMPLE = re.compile(
    r"(<!-- sample: (?P<name>[^\n]+?) -->\n```text\n)(?P<text>(?:(?!```).)*?)(```\n<!-- /sample -->)", re.S
)
COUNT = re.compile(r"(<!-- count: tests -->)(?P<count>[^<]*)(<!-- /count -->)")
WALL_TIME = re.compile(r"\((?:\d+(?:\.\d*)?|\d\.\d+e[+-]\d+) s\)")  # "(8.61 s)": the one number that changes


def masked(text: str) -> str:
    """``text`` with the run's wall time replaced: what must not differ between two runs of one command."""
    return WALL_TIME.sub("(… s)", text)


def output(arguments: list[str]) -> str:
    """What ``python -m tinygrad_act ARGUMENTS --no-progress`` prints in a COLUMNS-wide terminal, run in-process
    in a fresh working directory (the data cache stays the usual one)."""
    from tinygrad_act import cli

    cache = os.environ.get("TINYGRAD_ACT_CACHE") or str(Path.cwd() / ".cache" / "data")
    stdout = io.StringIO()
    environment = {"COLUMNS": str(COLUMNS), "TINYGRAD_ACT_CACHE": cache}
    with tempfile.TemporaryDirectory() as directory, mock.patch.dict(os.environ, environment):
        previous = Path.cwd()
        os.chdir(directory)
        try:
            with contextlib.redirect_stdout(stdout):
                code = cli.main([*arguments, "--no-progress"])
        finally:
            os.chdir(previous)
    if code != 0:
        raise SystemExit(f"python -m tinygrad_act {' '.join(arguments)} exited {code}")
    return stdout.getvalue().rstrip("\n")


def samples(text: str) -> dict[str, str]:
    """The samples README ``text`` holds: command -> its block."""
    return {match["name"]: match["text"].rstrip("\n") for match in SAMPLE.finditer(text)}


def test_count() -> int:
    """How many tests pytest collects (the suite as ``make test`` runs it)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=ROOT,
                            capture_output=True, text=True, check=True)  # fmt: skip
    return int(re.search(r"(\d+) tests? collected", result.stdout)[1])


def main() -> int:
    """Rewrite every sample in README.md from a fresh run, and the test count."""
    text = README.read_text(encoding="utf-8")
    missing = sorted(set(SAMPLES) - set(samples(text)))
    if missing:
        raise SystemExit(f"README.md has no sample block for {missing[0]!r}")
    for name, arguments in SAMPLES.items():
        print(f"running {name} ...", file=sys.stderr)
        fresh = output(arguments)
        text = SAMPLE.sub(
            lambda m, n=name, o=fresh: m.group(1) + o + "\n" + m.group(4) if m["name"] == n else m[0], text
        )
    count = test_count()
    text = COUNT.sub(lambda m: f"{m.group(1)}{count:,}{m.group(3)}", text)
    README.write_text(text, encoding="utf-8")
    print(f"wrote {len(SAMPLES)} samples and the test count ({count}) into {README}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
