"""Finding 8: which tanh nets train, over sigma_w^2 and depth, against the depth scale 6 xi_c of the correlation
map (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, figure 5), and the per-layer gradient factor against
sqrt(chi_1) (Poole et al. 2016)."""

from __future__ import annotations

import functools
import math

import numpy as np

from ..common import files
from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number, pct
from ..lab.stats import verdict
from ..lab.theory import correlation
from ..lab.theory import mean_field as theory
from ..nn import activations
from .common import Check, Context, Finding, Part, agreement, log_error, median, paragraphs

TRAINED_ACCURACY = 0.25  # "trained": final accuracy on the whole training split >= 2.5 x chance (10 classes)
AGREEMENT_AT_LEAST = 0.75  # the check's bar: the 6 xi_c boundary right in at least this fraction of the cells
FACTOR_WITHIN = 0.05  # ... and the per-layer factor within 5% of sqrt(chi) (median over runs)
NEAR_BOUNDARY = 2.0  # a cell within this factor of depth = 6 xi_c is "near the boundary"
CURVE_POINTS = 41  # sigma_w^2 values at which the figure draws 6 xi_c


@functools.lru_cache(maxsize=512)
def six_xi_c(act_spec: str, sigma_w2: float, sigma_b2: float) -> float:
    """6 xi_c (cached: the check and the figure ask again); inf at criticality."""
    return 6 * correlation.correlation_depth_scale(act_spec, sigma_w2, sigma_b2)


def measured_sigma_w2(ctx: Context, row: dict) -> float:
    """The run's own sigma_w^2 = fan_in mean(W^2) of its deep hidden layers (summary.json's theory block)."""
    summary = files.read_json(ctx.root / "runs" / row["run"] / "summary.json")
    return number((summary.get("theory") or {}).get("sigma_w2"))


def nominal_sigma_w2(init: str) -> float:
    """The sigma_w^2 an init spec asks for: gain^2 (he_normal:gain=g draws N(0, g^2 / fan_in))."""
    gain = float(init.split("gain=")[1]) if "gain=" in init else 1.0
    return gain * gain


def cells(ctx: Context) -> list[dict]:
    """One per run: nominal and measured sigma_w^2, depth, final train accuracy, status, 6 xi_c, factors."""
    act, sigma_b2 = activations.get(ctx.setting("act")).spec, float(ctx.setting("sigma_b2"))
    out = []
    for init in ctx.sweep.grid["init"]:
        for depth in ctx.sweep.grid["depth"]:
            for row in ctx.where(init=init, depth=depth)[:1]:
                sigma_w2 = measured_sigma_w2(ctx, row)
                out.append(
                    {
                        "nominal": nominal_sigma_w2(init),
                        "sigma_w2": sigma_w2,
                        "depth": depth,
                        "accuracy": number(row["train_accuracy"]),
                        "diverged": row["status"] == "diverged",
                        "six_xi_c": six_xi_c(act, round(sigma_w2, 6), sigma_b2) if sigma_w2 > 0 else math.nan,
                        "ratio_init": number(row["ratio_init"]),
                        "ratio_final": number(row["ratio_final"]),
                        "factor": number(row["per_layer_factor_init"]),
                        "factor_theory": number(row["predicted_per_layer_factor"]),
                    }
                )
    return judge(out)


def judge(rows: list[dict], trained_at: float = TRAINED_ACCURACY) -> list[dict]:
    """Add to each cell: trained (accuracy >= trained_at, not diverged), predicted (depth < 6 xi_c), agrees,
    and, where they disagree, the reason the numbers show."""
    judged = []
    for row in rows:
        trained = bool(row["accuracy"] >= trained_at) and not row["diverged"]
        predicted = bool(row["depth"] < row["six_xi_c"])
        judged.append({**row, "trained": trained, "predicted": predicted, "agrees": trained == predicted})
        judged[-1]["reason"] = "" if trained == predicted else failure_reason(judged[-1])
    return judged


def failure_reason(cell: dict) -> str:
    """Why a cell disagrees with depth < 6 xi_c: it diverged, or sits near the boundary, or is far from it."""
    ratio = cell["depth"] / cell["six_xi_c"] if cell["six_xi_c"] > 0 else math.inf
    where = "near the boundary" if 1 / NEAR_BOUNDARY <= ratio <= NEAR_BOUNDARY else "far from the boundary"
    if cell["diverged"]:
        return f"diverged ({where})"
    side = "stuck although depth < 6 xi_c" if cell["predicted"] else "trained although depth >= 6 xi_c"
    return f"{side}, depth / 6 xi_c = {fmt(ratio, 2)}: {where}"


def agreement_fraction(judged: list[dict]) -> float:
    """The fraction of cells where 'depth < 6 xi_c' and 'trained' agree (nan for no cells)."""
    return sum(c["agrees"] for c in judged) / len(judged) if judged else math.nan


def grid_table(ctx: Context, judged: list[dict]) -> str:
    """Per sigma_w^2: the theory (q*, chi_1, c*, chi_c, 6 xi_c), then per depth the accuracy, marked where wrong."""
    act, sigma_b2 = activations.get(ctx.setting("act")), float(ctx.setting("sigma_b2"))
    depths = ctx.sweep.grid["depth"]
    body = []
    for nominal in sorted({c["nominal"] for c in judged}):
        row_cells = [c for c in judged if c["nominal"] == nominal]
        s = float(np.mean([c["sigma_w2"] for c in row_cells]))
        q = theory.fixed_point(act, s, sigma_b2).q_star
        line = [f"{nominal:.2f} ({s:.3f})", fmt(theory.chi1(act, q, s), 3)]
        line += [
            fmt(correlation.correlation_fixed_point(act, s, sigma_b2), 3),
            fmt(correlation.chi_c(act, s, sigma_b2), 3),
        ]
        line.append(fmt(six_xi_c(act.spec, round(s, 6), sigma_b2), 3))
        for depth in depths:
            cell = next((c for c in row_cells if c["depth"] == depth), None)
            line.append("-" if cell is None else _cell_text(cell))
        body.append(line)
    headers = ["sigma_w^2 (measured)", "chi_1", "c*", "chi_c", "6 xi_c"] + [f"depth {d}" for d in depths]
    return markdown_table(headers, body)


def _cell_text(cell: dict) -> str:
    text = "diverged" if cell["diverged"] else pct(cell["accuracy"])
    return text if cell["agrees"] else f"**{text}** ✗"


def grid_figure(ctx: Context, judged: list[dict]) -> str:
    """Heatmap of the final train accuracy over (sigma_w^2, depth), the 6 xi_c curve, the critical sigma_w^2."""
    act, sigma_b2 = activations.get(ctx.setting("act")), float(ctx.setting("sigma_b2"))
    sigmas, depths = sorted({c["nominal"] for c in judged}), sorted({c["depth"] for c in judged})
    grid = np.full((len(depths), len(sigmas)), np.nan)
    for c in judged:
        grid[depths.index(c["depth"]), sigmas.index(c["nominal"])] = np.nan if c["diverged"] else c["accuracy"]
    fig, ax = plots.figure(1, 1, figsize=(8, 5))
    x_edges, y_edges = _edges(np.array(sigmas)), _edges(np.array(depths, dtype=float))
    image = ax.pcolormesh(x_edges, y_edges, grid, cmap=plots.STEP_COLORMAP, vmin=0.1, vmax=1.0)
    bar = fig.colorbar(image, ax=ax, label="train accuracy after training (chance 0.1)")
    bar.ax.axhline(TRAINED_ACCURACY, color="red", lw=2)  # the criterion: "trained" above this line
    for c in judged:
        x, y = c["nominal"], c["depth"]
        if c["diverged"]:
            ax.plot([x], [y], **{**plots.DIVERGED_MARKER, "color": "red"})
        elif not c["agrees"]:
            ax.plot([x], [y], marker="o", markersize=14, markerfacecolor="none", color="red", linestyle="none")
    curve = np.linspace(max(x_edges[0], sigmas[0] / 2), x_edges[-1], CURVE_POINTS)  # sigma_w^2 > 0
    critical = theory.critical_sigma_w2(act, sigma_b2)
    values = [six_xi_c(act.spec, round(float(s), 6), sigma_b2) for s in curve]
    ax.plot(curve, np.minimum(values, 1e4), color="white", lw=2, ls="--", label="6 xi_c (trainable below)")
    ax.axvline(critical, color="orange", lw=1.5, label=f"critical sigma_w^2 = {critical:.3f}")
    ax.plot([], [], marker="o", markerfacecolor="none", color="red", linestyle="none", label="theory wrong here")
    ax.plot([], [], **{**plots.DIVERGED_MARKER, "color": "red"}, label="diverged")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    ax.set_xlabel("sigma_w^2 (weights' variance x fan_in)")
    ax.set_ylabel("depth (hidden layers)")
    ax.set_title(f"{act.name}, sigma_b^2 = {sigma_b2:g}: trained (light) where depth < 6 xi_c?", fontsize=9)
    plots.legend(ax, fontsize=7, loc="upper right")
    return ctx.figure(fig, "grid")


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between neighbouring centres (the outer ones mirrored; +-10% around a single one)."""
    if centres.size == 1:
        return centres[0] * np.array([0.9, 1.1])
    mids = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mids[0]], mids, [2 * centres[-1] - mids[-1]]])


def failures_text(judged: list[dict]) -> str:
    """One bullet per cell where the boundary is wrong, with its numbers (accuracy; r = ||delta_1|| / ||delta_L||
    at step 0 and at the end: healthy at step 0 but ~0 at the end = the gradient vanished during training) and
    reason."""
    wrong = [c for c in judged if not c["agrees"]]
    if not wrong:
        return "The boundary is right in every cell."
    lines = [
        f"- sigma_w^2 = {c['sigma_w2']:.3f}, depth {c['depth']}: 6 xi_c = {fmt(c['six_xi_c'], 3)}, "
        f"train accuracy {'diverged' if c['diverged'] else pct(c['accuracy'])}, r {fmt(c.get('ratio_init'), 2)} at "
        f"step 0 -> {fmt(c.get('ratio_final'), 2)} at the end; {c['reason']}"
        for c in wrong
    ]
    stuck = [c for c in wrong if c["predicted"] and not c["diverged"]]
    lost = [c for c in stuck if verdict(c.get("ratio_init", math.nan)) == "healthy"]
    lost = [c for c in lost if verdict(c.get("ratio_final", math.nan)) == "vanishing"]
    summary = (
        f"\n\nOf the {len(stuck)} cells stuck although predicted trainable, {len(lost)} started healthy (r at step 0 "
        "within the healthy band) and ended vanishing: training, not the initialization the theory describes, "
        "lost their gradient."
        if stuck
        else ""
    )
    return "Where it is wrong:\n\n" + "\n".join(lines) + summary


def analyze(ctx: Context) -> str:
    """The setting, the grid table, the agreement and its failures, the per-layer factor, and the figure."""
    judged = cells(ctx)
    fraction = agreement_fraction(judged)
    errors = [log_error(c["factor"], c["factor_theory"]) for c in judged]
    sigma_b2 = float(ctx.setting("sigma_b2"))
    critical = theory.critical_sigma_w2(ctx.setting("act"), sigma_b2)
    return paragraphs(
        f"{ctx.setting('act')}, sigma_b^2 = {sigma_b2:g} (initial biases N(0, sigma_b^2)), width "
        f"{ctx.setting('width')}, data `{ctx.setting('data')}` (a linear teacher: 10 classes a linear classifier "
        f"separates), {ctx.setting('optimizer')} lr {ctx.setting('lr')} momentum {ctx.setting('momentum')}, batch "
        f"{ctx.setting('batch_size')}, {ctx.setting('steps')} steps, seed 0. Weights N(0, sigma_w^2 / fan_in); "
        "the theory uses each run's measured sigma_w^2 (fan_in mean(W^2) of its deep layers). c* is the correlation "
        "map's stable fixed point (1 when ordered), chi_c the slope there, xi_c = -1/ln chi_c "
        f"(`lab/theory/correlation.py`); critical sigma_w^2 = {critical:.3f}. A run *trained* if its final accuracy on "
        f"the whole training split is at least {TRAINED_ACCURACY:.0%} (2.5 x chance); the theory predicts it "
        "trains if depth < 6 xi_c. Cells: final train accuracy, **bold ✗** where the prediction is wrong.",
        grid_table(ctx, judged),
        f"'depth < 6 xi_c' predicts trained / not trained in {sum(c['agrees'] for c in judged)} of {len(judged)} "
        f"cells ({pct(fraction)}). " + failures_text(judged),
        f"Per-layer factor of ||delta|| at initialization, theory sqrt(chi) along q vs measurement: {agreement(errors)}.",
        grid_figure(ctx, judged),
    )


def check(ctx: Context) -> Check:
    """The claim tested on this finding's runs (see ``check_cells``)."""
    return check_cells(cells(ctx), theory.critical_sigma_w2(ctx.setting("act"), float(ctx.setting("sigma_b2"))))


def check_cells(judged: list[dict], critical: float) -> Check:
    """The boundary's agreement with trainability, the trainable depth peaking at criticality, the factor."""
    fraction = agreement_fraction(judged)
    errors = [log_error(c["factor"], c["factor_theory"]) for c in judged]
    sigmas = sorted({c["nominal"] for c in judged})
    deepest = {s: max([c["depth"] for c in judged if c["nominal"] == s and c["trained"]], default=0) for s in sigmas}
    near = min(sigmas, key=lambda s: abs(s - critical)) if sigmas else math.nan
    shown = [s for s in sigmas if s in (sigmas[0], near, sigmas[-1])]
    return Check(
        [
            Part(
                f"depth < 6 xi_c predicts trainability in at least {AGREEMENT_AT_LEAST:.0%} of the cells",
                fraction >= AGREEMENT_AT_LEAST,
                f"{sum(c['agrees'] for c in judged)} of {len(judged)} cells, {pct(fraction)}",
            ),
            Part(
                "the deepest trained net is at criticality, deeper than at the grid's edges",
                bool(sigmas) and deepest[near] > max(deepest[sigmas[0]], deepest[sigmas[-1]]),
                "deepest trained: " + ", ".join(f"{deepest[s]} at sigma_w^2 = {s:.2f}" for s in shown),
            ),
            Part(
                f"the measured per-layer factor follows sqrt(chi) within {FACTOR_WITHIN:.0%} (median)",
                median(errors) <= math.log10(1 + FACTOR_WITHIN),
                agreement(errors),
            ),
        ]
    )


FINDING = Finding(
    "edge_of_chaos",
    "The edge of chaos: trainable depth against 6 xi_c",
    "A tanh net (sigma_b^2 = 0.05) trains only if it is shallower than about 6 xi_c, the depth over which two "
    "inputs' correlation is forgotten; xi_c diverges at the critical sigma_w^2 (1.76), so only there do very deep "
    "nets train. At initialization each layer multiplies the gradient by sqrt(chi_1) (< 1 ordered, > 1 chaotic).",
    "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, Deep information propagation, ICLR 2017 (figure 5); Poole et "
    "al. 2016.",
    analyze,
    check,
)
