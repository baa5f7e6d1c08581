"""Finding 10: dynamical isometry -- the whole Jacobian spectrum at step 0, orthogonal vs Gaussian, tanh vs ReLU.

Pennington, Schoenholz & Ganguli 2017: near criticality (small sigma_b^2, chi1 = 1), orthogonal tanh networks keep
every singular value of the input-output Jacobian near the same size, Gaussian weights spread them (the
variance of s^2 grows by one per layer), and ReLU cannot be isometric: its D^2 has entries 0 and 1 with equal
probability whatever the init, so the variance grows by at least one per layer. Each run measures the singular
values of dz_L/dz_1 (lab/measure/jacobian.py) and trains briefly; the check compares the bands, the free-probability
variance (lab/theory/spectrum.py) and the training losses.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import files
from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table
from ..lab.theory import mean_field as theory
from ..lab.theory import spectrum, spectrum_density
from .common import Check, Context, Finding, Part, log_error, paragraphs

NARROW_DECADES = 2.0  # a "narrow band": the middle 90% of the singular values within a factor of 100
WIDE_DECADES = 4.0  # "many decades": the middle 90% spread over more than a factor of 10^4
THEORY_FACTOR = 2.0  # measured and free-probability variance of s^2 agree within this factor
SPEEDUP_ORDERS = 10.0  # "orders of magnitude faster" (the paper's abstract): at least this factor
SMOOTHING = 3  # logged minibatch losses averaged, so one lucky batch does not decide a comparison


def _summary(ctx: Context, row: dict) -> dict:
    return files.read_json(ctx.root / "runs" / row["run"] / "summary.json") or {}


def _runs(ctx: Context) -> list[dict]:
    """One entry per run: its grid values, the Jacobian entry of its summary and the summary itself."""
    out = []
    for row in ctx.rows:
        summary = _summary(ctx, row)
        entry = summary.get("jacobian") or {}
        if entry.get("applies"):
            kind = "orthogonal" if row["init"].startswith("orthogonal") else "Gaussian"
            out.append({**row, "kind": kind, "entry": entry, "summary": summary})
    return out


def relative_variance(entry: dict) -> float:
    """Var(s^2) / mean(s^2)^2 of the measured singular values (scale-free: comparable across depths)."""
    s = np.asarray(entry["singular_values"], dtype=float)
    if not (s.size and s[0] > 0 and np.all(np.isfinite(s))):
        return math.nan
    s2 = np.square(s / s[0])  # scaled by the largest: 1e100 gains neither overflow nor change the ratio
    return float(np.var(s2) / np.mean(s2) ** 2)


def smoothed_losses(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, minibatch loss averaged over SMOOTHING consecutive logged records, ending at each step)."""
    steps = np.array([r["step"] for r in records])
    losses = np.array([r["loss"] for r in records], dtype=float)
    window = max(1, min(SMOOTHING, len(records)))  # a short run: over all its records
    return steps[window - 1 :], np.convolve(losses, np.ones(window) / window, mode="valid")


def steps_to(records: list[dict], target: float) -> float:
    """The first step at which the smoothed minibatch loss is at most ``target`` (inf if never)."""
    steps, losses = smoothed_losses(records)
    reached = np.flatnonzero(losses <= target)
    return float(steps[reached[0]]) if reached.size else math.inf


def speedup(ctx: Context, runs: list[dict], depth: int) -> tuple[float, float, float] | None:
    """Gaussian tanh's final smoothed loss, the steps it took to get there, and the steps orthogonal tanh took."""
    pick = {r["kind"]: r for r in runs if r["act"] == "tanh" and r["depth"] == depth}
    if set(pick) != {"orthogonal", "Gaussian"}:
        return None
    gaussian, orthogonal = ctx.records(pick["Gaussian"]), ctx.records(pick["orthogonal"])
    target = float(smoothed_losses(gaussian)[1][-1])
    return target, steps_to(gaussian, target), steps_to(orthogonal, target)


def _steps(value: float) -> str:
    return "never" if math.isinf(value) else str(int(value))


def table(runs: list[dict]) -> str:
    """Per run: the band of singular values, mean s^2 and the variance of s^2 beside their theory, training."""
    rows = []
    for r in runs:
        e, t, s = r["entry"], r["entry"].get("theory") or {}, r["summary"]
        rows.append([r["act"], r["kind"], r["depth"], fmt(e["median"], 3), fmt(e["decades"], 3),
                     fmt(e["mean_s2"], 3), fmt(t.get("mean_s2"), 3), fmt(relative_variance(e), 3),
                     fmt(t.get("relative_var"), 3), fmt(s.get("train_loss"), 4), fmt(s.get("test_accuracy"), 3)])  # fmt: skip
    head = ["act", "weights", "depth", "median s", "decades (90%)", "mean s²", "theory", "Var(s²)/mean²", "theory",
            "train loss (end)", "test acc (end)"]  # fmt: skip
    return markdown_table(head, rows)


def theory_fractions(predicted: dict, edges: np.ndarray) -> np.ndarray | None:
    """Free probability's fraction of singular values per bin of log10(s / sqrt(mean s^2)) (its own mean), the
    first bin holding everything below (zero eigenvalues and those under the density's grid); None if none."""
    density = predicted.get("density") or {}
    if not density.get("applies"):
        return None
    below = 1.0 - density["mass"]
    total = below + spectrum_density.cdf(density, predicted["mean_s2"] * 100.0**edges)
    total[0] = 0.0
    return np.diff(total)


def spectrum_figure(ctx: Context, runs: list[dict]) -> str:
    """One panel per depth: every (activation, weights)'s pooled singular values over their root mean square
    (scale-free: the spread, not the overall gain), as log10 histograms; dashed, free probability's density
    (over its own mean)."""
    depths = sorted({r["depth"] for r in runs})
    fig, axes = plots.figure(1, len(depths), figsize=(5 * len(depths), 3.8), sharey=True, squeeze=False)
    names = sorted({f"{r['act']}, {r['kind']}" for r in runs})
    edges = np.linspace(-20, 2, 89)  # anything smaller (ReLU's null directions) in the first bin
    for ax, depth in zip(axes[0], depths):
        for r in (r for r in runs if r["depth"] == depth):
            name = f"{r['act']}, {r['kind']}"
            s = np.asarray(r["entry"]["singular_values"], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.clip(np.log10(s / math.sqrt(r["entry"]["mean_s2"])), edges[0], edges[-1])
            counts, _ = np.histogram(logs, edges)
            colour = plots.activation_color(name, names)
            ax.stairs(counts / max(counts.sum(), 1), edges, lw=1.5, color=colour,
                      label=f"{name} ({fmt(r['entry']['decades'], 2)} decades)")  # fmt: skip
            expected = theory_fractions(r["entry"].get("theory") or {}, edges)
            if expected is not None:
                ax.stairs(expected, edges, lw=1.0, ls="--", color=colour)
        ax.set_title(f"depth {depth}", fontsize=9)
        ax.set_xlabel(r"$\log_{10}(s / \sqrt{\overline{s^2}})$, $s$ of $\partial z_L/\partial z_1$ (first bin: below)")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="upper left")
    axes[0][0].set_ylabel("fraction of singular values")
    return ctx.figure(fig, "spectra")


def _setting(ctx: Context, runs: list[dict]) -> str:
    """The setting, from the runs: width, sigma_b^2, the measured sigma_w^2 beside the critical one, training."""
    sigma_b2 = ctx.setting("sigma_b2")
    measured = [r["summary"]["theory"]["sigma_w2"] for r in runs if (r["summary"].get("theory") or {}).get("applies")]
    critical = theory.critical_sigma_w2("tanh", sigma_b2)
    relu_v = [spectrum.derivative_moments("relu", q) for q in (0.1, 1.0, 10.0)]
    return (
        f"Width {ctx.setting('width')}, depths {', '.join(str(d) for d in ctx.sweep.grid['depth'])}, biases "
        f"N(0, {sigma_b2:g}), weights of σ_w² = {fmt(min(measured), 4)} .. {fmt(max(measured), 4)} (measured; tanh's "
        f"critical σ_w² at this σ_b² is {fmt(critical, 4)}), seed {ctx.setting('seed')}. The singular values of "
        f"dz_L/dz_1 at step 0 are pooled over {runs[0]['entry']['examples']} examples of the first batch; "
        f"*decades (90%)* = log10 of the 95th over the 5th percentile (a float64 SVD resolves s down to about "
        f"1e-16 of the largest: spreads past ~16 decades are at that floor, not measured). Theory: mean s² = the mean-field product of "
        f"χ; Var(s²)/mean² = Σ_l (E[φ'⁴]/E[φ'²]² - 1) + (1 per Gaussian layer) (free probability); the figure's dashed "
        f"lines are free probability's whole density of s² (the S-transform product solved numerically, "
        f"lab/theory/spectrum_density.py), each over its own mean. ReLU's φ'² is 0 "
        f"or 1, so its per-layer term is {', '.join(fmt(m2 / m1**2 - 1, 3) for m1, m2 in relu_v)} at q = 0.1, 1, "
        f"10: whatever σ_w², q or the weights. Then {ctx.setting('steps')} steps of SGD (lr {ctx.setting('lr')}, "
        f"momentum {ctx.setting('momentum')}) on MNIST-1D. The paper's speed-up was measured on CIFAR-10 with far "
        "wider and deeper networks trained far longer (its exact width, depth and schedule were not verified for "
        "this report): here width, data and training length all differ, so only the direction of its speed-up "
        "is comparable, not its size."
    )


def theory_agreement(runs: list[dict], act: str) -> str:
    """How far the measured Var(s^2)/mean^2 is from free probability's, over one activation's runs."""
    errors = [log_error(relative_variance(r["entry"]), (r["entry"].get("theory") or {}).get("relative_var"))
              for r in runs if r["act"] == act]  # fmt: skip
    errors = [e for e in errors if math.isfinite(e)]
    if not errors:
        return f"{act}: no run to compare with free probability"
    worst = 10 ** max(errors)
    within = "within" if worst <= THEORY_FACTOR else "not within"
    return (f"{act}: measured Var(s²)/mean² {within} a factor {THEORY_FACTOR:g} of free probability's "
            f"(worst a factor {fmt(worst, 3)} over {len(errors)} runs)")  # fmt: skip


def analyze(ctx: Context) -> str:
    """The setting, the table, the figure and the training comparison."""
    runs = _runs(ctx)
    lines = []
    for depth in sorted({r["depth"] for r in runs}):
        found = speedup(ctx, runs, depth)
        if found:
            target, gaussian, orthogonal = found
            lines.append(f"depth {depth}: Gaussian tanh's final smoothed loss {fmt(target, 4)} took it "
                         f"{_steps(gaussian)} steps, orthogonal tanh {_steps(orthogonal)}")  # fmt: skip
    lines += [theory_agreement(runs, act) for act in ctx.sweep.grid["act"]]
    return paragraphs(_setting(ctx, runs), table(runs), "**Measured.** " + "; ".join(lines) + ".",
                      spectrum_figure(ctx, runs))  # fmt: skip


def check(ctx: Context) -> Check:
    """The claim in parts: orthogonal tanh narrow, Gaussian tanh wide, ReLU never narrow, theory, speed."""
    runs = _runs(ctx)

    def decades(act, kind):
        return {r["depth"]: r["entry"]["decades"] for r in runs if r["act"] == act and r["kind"] == kind}

    def listed(values: dict) -> str:
        return ", ".join(f"depth {d}: {fmt(v, 3)}" for d, v in sorted(values.items()))

    ortho, gauss = decades("tanh", "orthogonal"), decades("tanh", "Gaussian")
    relu = {f"{kind} {d}": v for kind in ("orthogonal", "Gaussian") for d, v in decades("relu", kind).items()}
    parts = [
        Part(f"orthogonal tanh keeps the middle 90% of the spectrum within {NARROW_DECADES:g} decades",
             bool(ortho) and max(ortho.values()) < NARROW_DECADES, f"decades {listed(ortho)}"),
        Part(f"Gaussian tanh spreads it over more than {WIDE_DECADES:g} decades",
             bool(gauss) and min(gauss.values()) > WIDE_DECADES, f"decades {listed(gauss)}"),
        Part(f"ReLU is not isometric with either init (more than {NARROW_DECADES:g} decades)",
             bool(relu) and min(relu.values()) > NARROW_DECADES,
             "decades " + ", ".join(f"{k}: {fmt(v, 3)}" for k, v in relu.items())),
    ]  # fmt: skip
    parts += _speed_parts(ctx, runs)
    return Check(parts)


def _speed_parts(ctx: Context, runs: list[dict]) -> list[Part]:
    """Orthogonal tanh reaches Gaussian tanh's final loss sooner at every depth; and by orders of magnitude?"""
    found = {d: speedup(ctx, runs, d) for d in sorted({r["depth"] for r in runs})}
    found = {d: v for d, v in found.items() if v}
    if not found:
        return [Part("isometry trains faster", False, "no pair of tanh runs to compare")]
    factors = {d: g / max(o, ctx.setting("log_every")) for d, (_, g, o) in found.items()}
    said = ", ".join(
        f"depth {d}: Gaussian {_steps(g)}, orthogonal {_steps(o)} steps (x{fmt(factors[d], 3)})"
        for d, (_, g, o) in found.items()
    )
    return [
        Part("orthogonal tanh reaches Gaussian tanh's final loss sooner at every depth",
             all(o < g for _, g, o in found.values()), said),
        Part(f"by orders of magnitude (at least x{SPEEDUP_ORDERS:g}, the paper's abstract), in "
             f"{ctx.setting('steps')} steps", all(f >= SPEEDUP_ORDERS for f in factors.values()),
             "speed-up " + ", ".join(f"depth {d}: x{fmt(f, 3)}" for d, f in factors.items())),
    ]  # fmt: skip


FINDING = Finding(
    "isometry",
    "Dynamical isometry: the whole Jacobian spectrum",
    "Near criticality, orthogonal tanh networks keep the whole spectrum of the Jacobian's singular values in a "
    "narrow band at depth 32 to 128, Gaussian weights spread it over many decades, and ReLU cannot be isometric "
    "with any init; isometry trains faster.",
    'Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through dynamical isometry" '
    '(NeurIPS; abstract: networks achieving dynamical isometry "learn orders of magnitude faster"); Pennington, '
    'Schoenholz & Ganguli 2018, "The emergence of spectral universality in deep networks" (AISTATS).',
    analyze,
    check,
)
