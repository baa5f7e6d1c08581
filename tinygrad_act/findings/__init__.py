"""The findings report: thirteen classic results, each reproduced by a named sweep and written up with its numbers.

``generate()`` runs (or resumes) the sweep of every finding (configs in ``experiments/*.toml``), hands each
finding's rows to its module (one per finding: rows -> table, figure, text) and writes
``experiments/README.md``. Every number in the report comes from those runs or from ``lab.theory``; the prose
around a number only states what the number is, and each verdict of agreement is computed, not written in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..common import files
from ..common.errors import UsageError
from ..lab.stats import EXPLODING_ABOVE, VANISHING_BELOW
from ..lab.sweep import grid as sweeps
from . import (
    dying_relu,
    edge_of_chaos,
    exploding,
    glorot_bengio,
    he_2015,
    isometry,
    orthogonal,
    rescue,
    selu,
    vanishing_depth,
)
from .common import Context, Finding
from .through_time import exploding_time, irnn, vanishing_time

__all__ = ["FINDINGS", "Context", "Finding", "generate"]

# The report's order; each finding's name is its sweep config, experiments/<name>.toml.
FINDINGS: list[Finding] = [
    module.FINDING
    for module in (
        vanishing_depth,
        glorot_bengio,
        he_2015,
        dying_relu,
        exploding,
        rescue,
        selu,
        edge_of_chaos,
        orthogonal,
        isometry,
        vanishing_time,
        exploding_time,
        irnn,
    )
]


def generate(names=None, runs_root="runs/report", out_dir="experiments", jobs: int = 2, progress=True) -> Path:
    """Run (or resume) the chosen findings' sweeps (all by default) and write ``out_dir/README.md``.

    Sections of findings not chosen are kept from the previous README (or left as placeholders).
    """
    unknown = sorted(set(names or ()) - {f.name for f in FINDINGS})
    if unknown:
        raise UsageError(f"unknown finding {unknown[0]!r}; choose from: {', '.join(f.name for f in FINDINGS)}")
    out = Path(out_dir)
    chosen = [f for f in FINDINGS if not names or f.name in names]
    sweeps.prefetch([(sweeps.load_config(f.name), Path(runs_root) / f.name) for f in chosen], jobs, progress)
    bodies = {}
    for finding in FINDINGS:
        if not names or finding.name in names:
            bodies[finding.name] = _analyze(finding, Path(runs_root) / finding.name, out / "figures", jobs, progress)
    path = out / "README.md"
    existing = _existing_sections(path)
    parts = [_HEADER]
    for number, finding in enumerate(FINDINGS, 1):
        if finding.name in bodies:
            body = _section(number, finding, bodies[finding.name])
        else:
            body = existing.get(
                finding.name,
                f"## {number}. {finding.title}\n\n(not generated yet: `make report ONLY={finding.name}`)\n",
            )
        parts.append(f"<!-- finding:{finding.name} -->\n{body.rstrip()}\n<!-- /finding:{finding.name} -->")
    files.atomic_write(path, "\n\n".join(parts) + "\n")
    return path


def _analyze(finding: Finding, root: Path, figures: Path, jobs: int, progress: bool) -> tuple[str, str | None]:
    """Run (or resume) one finding's sweep under ``root``; its analysis (figures go to ``figures``) and check."""
    sweep = sweeps.load_config(finding.name)
    rows = sweeps.run_sweep(sweep, root, jobs=jobs, progress=progress)
    with np.errstate(all="ignore"):  # diverged or vanished runs: inf and nan are the honest numbers here
        ctx = Context(finding.name, sweep, rows, root, figures)
        body = finding.analyze(ctx)  # first: a check may read what the analysis drew or cached
        return body, (finding.check(ctx).markdown() if finding.check else None)


def _section(number: int, finding: Finding, analysis: tuple[str, str | None]) -> str:
    """Title, the claim and its check computed from the runs, source, reproduce line, then the analysis."""
    body, check = analysis
    return "\n".join(
        [
            f"## {number}. {finding.title}",
            "",
            f"**Claim.** {finding.claim}",
            "",
            *([check, ""] if check else []),
            f"**Source.** {finding.source}",
            "",
            f"**Reproduce.** `make report ONLY={finding.name}` (or `python -m tinygrad_act sweep {finding.name} --jobs 2`; "
            f"config: [`{finding.name}.toml`]({finding.name}.toml))",
            "",
            body,
        ]
    )


def _existing_sections(path: Path) -> dict:
    """Sections of a previous report, so that regenerating one finding keeps the others."""
    if not path.exists():
        return {}
    text = path.read_text()
    sections = {}
    for finding in FINDINGS:
        start, end = f"<!-- finding:{finding.name} -->", f"<!-- /finding:{finding.name} -->"
        if start in text and end in text:
            sections[finding.name] = text.split(start, 1)[1].split(end, 1)[0].strip()
    return sections


def _power_of_ten(value: float) -> str:
    """1e-2 as the report writes it (not 0.01 or 1e-02)."""
    return f"1e{round(np.log10(value))}"


_HEADER = f"""# Findings: the classic results, reproduced

Every table and figure below is regenerated from fresh runs by `make report` (resumable: a killed report
picks up where it stopped; `make report ONLY=name` redoes one finding). Runs live in `runs/report/<finding>/`.
Unless a finding says otherwise: MNIST-1D (4000 train / 1000 test, 40 features, 10 classes), width 64,
batch 64, SGD with momentum 0.9, lr 0.02, float64, biases zero, seed 0. **r** is the ratio of the
back-propagated gradient norm ||dL/dz|| at the first hidden layer to that at the last hidden layer, at
step 0 (initialization) unless marked *end*; verdict: vanishing if r < {_power_of_ten(VANISHING_BELOW)}, exploding if r > {_power_of_ten(EXPLODING_ABOVE)} or
non-finite, else healthy. *Theory* is the mean-field prediction of `tinygrad_act/lab/theory/mean_field.py` (Poole et al.
2016; Schoenholz et al. 2017) from each run's own weight variances and sigma_b^2 (0: zero biases, unless a finding says otherwise)."""
