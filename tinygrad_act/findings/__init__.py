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


def generate(
    names=None, runs_root="runs/report", out_dir="experiments", jobs: int = 2, progress=True, full: bool = False
) -> Path:
    """Run (or resume) the chosen findings' sweeps (all by default) and write ``out_dir/README.md``.

    Sections of findings not chosen are kept from the previous README (or left as placeholders). With ``full``,
    a chosen finding's full grid (Finding.full) runs too and its committed table ``out_dir/<full>.json`` is
    rewritten from it; otherwise the report reads that table as it was committed.
    """
    unknown = sorted(set(names or ()) - {f.name for f in FINDINGS})
    if unknown:
        raise UsageError(f"unknown finding {unknown[0]!r}; choose from: {', '.join(f.name for f in FINDINGS)}")
    out = Path(out_dir)
    chosen = [f for f in FINDINGS if not names or f.name in names]
    grids = [(f.name, f.name) for f in chosen] + [(f.full, f.full) for f in chosen if full and f.full]
    sweeps.prefetch([(sweeps.load_config(config), Path(runs_root) / root) for config, root in grids], jobs, progress)
    for finding in (f for f in chosen if full and f.full):
        _commit_full(finding, Path(runs_root) / finding.full, out, jobs, progress)
    bodies = {}
    for finding in chosen:
        bodies[finding.name] = _analyze(finding, Path(runs_root) / finding.name, out, jobs, progress)
    out.mkdir(parents=True, exist_ok=True)  # a report whose findings drew no figure still has its folder
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


def _analyze(finding: Finding, root: Path, out: Path, jobs: int, progress: bool) -> tuple[str, str | None]:
    """Run (or resume) one finding's sweep under ``root``; its analysis (figures go to ``out/figures``, its full
    grid's committed table, if any, is read from ``out``) and check."""
    sweep = sweeps.load_config(finding.name)
    rows = sweeps.run_sweep(sweep, root, jobs=jobs, progress=progress)
    committed = files.read_json(out / f"{finding.full}.json") if finding.full else None
    with np.errstate(all="ignore"):  # diverged or vanished runs: inf and nan are the honest numbers here
        ctx = Context(finding.name, sweep, rows, root, out / "figures", committed)
        body = finding.analyze(ctx)  # first: a check may read what the analysis drew or cached
        return body, (finding.check(ctx).markdown() if finding.check else None)


def _commit_full(finding: Finding, root: Path, out: Path, jobs: int, progress: bool) -> None:
    """Run (or resume) a finding's full grid under ``root`` and write what it exports to ``out/<full>.json``."""
    sweep = sweeps.load_config(finding.full)
    rows = sweeps.run_sweep(sweep, root, jobs=jobs, progress=progress)
    with np.errstate(all="ignore"):
        exported = finding.export(Context(finding.full, sweep, rows, root, out / "figures"))
    head = (f'{{"made_by": {files.dumps(f"make report ONLY={finding.name} FULL=1")}, "sweep": {files.dumps(finding.full)}, '
            f'"fixed": {files.dumps(sweep.fixed)}')  # fmt: skip
    rows = ",\n".join(files.dumps(row) for row in exported)  # one run per line: a rerun's diff reads cell by cell
    files.make_dir(out)
    files.atomic_write(out / f"{finding.full}.json", f'{head}, "rows": [\n{rows}\n]}}\n')


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
2016; Schoenholz et al. 2017) from each run's own weight variances and sigma_b^2 (0: zero biases, unless a finding says otherwise).

Each claim is checked on the runs, part by part. A part prints the numbers that decide it and its *margin*: how far
the deciding number is from its threshold (in decades for ratios, points for accuracies, cells for finding 8's
table), judged on the median over seeds, beside the *seeds' spread*: the largest distance of one seed's margin
from it (for a statistic over seeds, of the margin without one seed). A margin inside the spread reads *within
noise*: another seed, or another machine's rounding, could flip it. A run that diverged never counts as holding. A
part whose runs are not in this report reads *not judged*, and its finding's status says how many are.
Numbers are bitwise reproducible on one machine (same numpy and BLAS); verdicts whose margin exceeds the spread
are what carries over to another."""
