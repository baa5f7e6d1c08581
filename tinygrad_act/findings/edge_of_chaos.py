"""Finding 8: which tanh nets train, over sigma_w^2 and depth, against the depth scale 6 xi_c of the correlation
map (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, figure 5), beside the best rules that look at depth alone
or at sigma_w^2 alone; and the per-layer gradient factor against sqrt(chi_1) (Poole et al. 2016).

The full grid (9 sigma_w^2 x 5 depths x 2 seeds) is too heavy for the report's budget: `make report
ONLY=edge_of_chaos FULL=1` runs it and commits one row per run to experiments/edge_of_chaos_full.json
(``export``); the report judges that committed table and reruns six of its runs to show that it reproduces.
"""

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
from .common import Check, Context, Finding, Margin, agreement, judged, log_error, median, paragraphs, seed_margin

# "Trained", fixed before the full grid ran (from the probe, edge_of_chaos_probe.toml): a run learned at least half
# of what the shallowest net of the grid (depth 10, same sigma_w^2 and seed) learned above chance, in final accuracy
# on the whole training split; a diverged run did not. Relative to the same sigma_w^2, so that the criterion asks
# whether depth stopped training, not how hard the data are for that sigma_w^2.
TRAINED_FRACTION = 0.5
FACTOR_WITHIN = 0.05  # the per-layer factor within 5% of sqrt(chi) (median over runs)
NEAR_BOUNDARY = 2.0  # a cell within this factor of depth = 6 xi_c is "near the boundary"
CURVE_POINTS = 41  # sigma_w^2 values at which the figure draws 6 xi_c
FULL_TABLE = "edge_of_chaos_full"  # the full grid's sweep, and its committed table experiments/<this>.json


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


def export(ctx: Context) -> list[dict]:
    """One row per run with what the analysis reads: the table committed for the full grid (Finding.export)."""
    seed = ctx.setting("seed")
    fields = ("train_accuracy", "status", "ratio_init", "ratio_final", "per_layer_factor_init",
              "predicted_per_layer_factor")  # fmt: skip
    return [
        {"init": r["init"], "depth": r["depth"], "seed": r.get("seed", seed), "sigma_w2": measured_sigma_w2(ctx, r)}
        | {field: r[field] for field in fields}
        for r in ctx.rows
    ]


def runs(ctx: Context) -> list[dict]:
    """The runs the claim is judged on: the committed full table if there is one, else this sweep's own."""
    return ctx.committed["rows"] if ctx.committed else export(ctx)


def progress(rows: list[dict], chance: float) -> dict:
    """(init, depth, seed) -> the fraction of the reference net's accuracy above chance that the run reached:
    (accuracy - chance) / (reference accuracy - chance), the reference being the shallowest run of the same init
    and seed; -inf for a diverged run, nan without a reference that learned anything."""
    shallowest = min((r["depth"] for r in rows), default=0)
    reference = {(r["init"], r["seed"]): number(r["train_accuracy"]) for r in rows if r["depth"] == shallowest}
    out = {}
    for r in rows:
        base = reference.get((r["init"], r["seed"]), math.nan) - chance
        gained = number(r["train_accuracy"]) - chance
        out[r["init"], r["depth"], r["seed"]] = (
            -math.inf if r["status"] == "diverged" else gained / base if base > 0 else math.nan
        )
    return out


def judge(rows: list[dict], act: str, sigma_b2: float, chance: float, seeds=None, trained_at: float | None = None):
    """One cell per (init, depth), over the runs of ``seeds`` (None: all): median accuracy and progress, trained
    (median progress >= trained_at), predicted (depth < 6 xi_c at the median measured sigma_w^2), agrees, noisy
    (the seeds disagree on trained), reference (the shallowest depth: trained by definition, not judged), and
    where the prediction is wrong, the reason the numbers show."""
    trained_at = TRAINED_FRACTION if trained_at is None else trained_at
    rows = [r for r in rows if seeds is None or r["seed"] in seeds]
    gained = progress(rows, chance)
    shallowest = min((r["depth"] for r in rows), default=0)
    cells = []
    for init in sorted({r["init"] for r in rows}, key=nominal_sigma_w2):
        for depth in sorted({r["depth"] for r in rows if r["init"] == init}):
            group = [r for r in rows if r["init"] == init and r["depth"] == depth]
            each = [gained[init, depth, r["seed"]] for r in group]
            sigma_w2 = median(r["sigma_w2"] for r in group)
            cell = {
                "nominal": nominal_sigma_w2(init), "sigma_w2": sigma_w2, "depth": depth, "runs": len(group),
                "accuracy": median(r["train_accuracy"] for r in group), "progress": float(np.median(each)),
                "diverged": all(r["status"] == "diverged" for r in group),
                "six_xi_c": six_xi_c(act, round(sigma_w2, 6), sigma_b2) if sigma_w2 > 0 else math.nan,
                "ratio_init": median(r["ratio_init"] for r in group),
                "ratio_final": median(r["ratio_final"] for r in group),
                "factors": [(number(r["per_layer_factor_init"]), number(r["predicted_per_layer_factor"])) for r in group],
                "noisy": len({p >= trained_at for p in each}) > 1, "reference": depth == shallowest,
            }  # fmt: skip
            cell["trained"] = bool(cell["progress"] >= trained_at)
            cell["predicted"] = bool(depth < cell["six_xi_c"])
            cell["agrees"] = cell["trained"] == cell["predicted"]
            cell["reason"] = "" if cell["agrees"] else failure_reason(cell)
            cells.append(cell)
    return cells


def failure_reason(cell: dict) -> str:
    """Why a cell disagrees with depth < 6 xi_c: it diverged, or sits near the boundary, or is far from it."""
    ratio = cell["depth"] / cell["six_xi_c"] if cell["six_xi_c"] > 0 else math.inf
    where = "near the boundary" if 1 / NEAR_BOUNDARY <= ratio <= NEAR_BOUNDARY else "far from the boundary"
    if cell["diverged"]:
        return f"diverged ({where})"
    side = "stuck although depth < 6 xi_c" if cell["predicted"] else "trained although depth >= 6 xi_c"
    return f"{side}, depth / 6 xi_c = {fmt(ratio, 2)}: {where}"


def judged_cells(cells: list[dict]) -> list[dict]:
    """The cells the claim is judged on: all but the reference depth's (trained by definition)."""
    return [c for c in cells if not c["reference"]]


def agreements(cells: list[dict]) -> dict:
    """How many judged cells each rule gets right: 6 xi_c, the best rule on depth alone, on sigma_w^2 alone (each
    best rule says "trained" for a depth, or a sigma_w^2, where most of its cells trained: no rule on that one
    number can do better on this table), and of how many."""
    judged = judged_cells(cells)

    def best(key: str) -> int:
        groups = {}
        for c in judged:
            groups.setdefault(c[key], []).append(c["trained"])
        return sum(max(sum(g), len(g) - sum(g)) for g in groups.values())

    theory_right = sum(c["agrees"] for c in judged)
    return {"theory": theory_right, "depth": best("depth"), "sigma": best("nominal"), "cells": len(judged)}


def best_depth_rule(cells: list[dict]) -> str:
    """The best depth-only rule on this table, spelled out: ``trained at depth 20, 40``."""
    judged = judged_cells(cells)
    depths = sorted({c["depth"] for c in judged})
    trained = [d for d in depths if 2 * sum(c["trained"] for c in judged if c["depth"] == d) > sum(
        1 for c in judged if c["depth"] == d)]  # fmt: skip
    return f"trained at depth {', '.join(map(str, trained))}" if trained else "never trained"


def deepest_trained(cells: list[dict]) -> dict:
    """sigma_w^2 (nominal) -> the deepest trained depth (0 if none)."""
    return {s: max([c["depth"] for c in cells if c["nominal"] == s and c["trained"]], default=0)
            for s in sorted({c["nominal"] for c in cells})}  # fmt: skip


def grid_table(ctx: Context, cells: list[dict]) -> str:
    """Per sigma_w^2: the theory (chi_1, c*, chi_c, 6 xi_c), then per depth the median accuracy, marked where wrong."""
    act, sigma_b2 = activations.get(ctx.setting("act")), float(ctx.setting("sigma_b2"))
    depths = sorted({c["depth"] for c in cells})
    body = []
    for nominal in sorted({c["nominal"] for c in cells}):
        row_cells = [c for c in cells if c["nominal"] == nominal]
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
    text += " (ref.)" if cell["reference"] else " ~" if cell["noisy"] else ""
    return text if cell["agrees"] or cell["reference"] else f"**{text}** ✗"


def grid_figure(ctx: Context, cells: list[dict]) -> str:
    """Heatmap of the median final train accuracy over (sigma_w^2, depth), the 6 xi_c curve, the critical sigma_w^2."""
    act, sigma_b2 = activations.get(ctx.setting("act")), float(ctx.setting("sigma_b2"))
    sigmas, depths = sorted({c["nominal"] for c in cells}), sorted({c["depth"] for c in cells})
    grid = np.full((len(depths), len(sigmas)), np.nan)
    for c in cells:
        grid[depths.index(c["depth"]), sigmas.index(c["nominal"])] = np.nan if c["diverged"] else c["accuracy"]
    fig, ax = plots.figure(1, 1, figsize=(8, 5))
    x_edges, y_edges = _edges(np.array(sigmas)), _edges(np.array(depths, dtype=float))
    image = ax.pcolormesh(x_edges, y_edges, grid, cmap=plots.STEP_COLORMAP, vmin=0.1, vmax=1.0)
    fig.colorbar(image, ax=ax, label="train accuracy after training (median over seeds; chance 0.1)")
    for c in cells:
        x, y = c["nominal"], c["depth"]
        if c["diverged"]:
            ax.plot([x], [y], **{**plots.DIVERGED_MARKER, "color": "red"})
        elif not (c["agrees"] or c["reference"]):
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


def failures_text(cells: list[dict], width: int) -> str:
    """One bullet per judged cell where the boundary is wrong, with its numbers (median accuracy; r =
    ||delta_1|| / ||delta_L|| at step 0 and at the end: healthy at step 0 but ~0 at the end = the gradient
    vanished during training) and reason."""
    wrong = [c for c in judged_cells(cells) if not c["agrees"]]
    if not wrong:
        return "The boundary is right in every judged cell."
    lines = [
        f"- sigma_w^2 = {c['sigma_w2']:.3f}, depth {c['depth']}: 6 xi_c = {fmt(c['six_xi_c'], 3)}, "
        f"train accuracy {'diverged' if c['diverged'] else pct(c['accuracy'])}"
        f"{' (the seeds disagree)' if c['noisy'] else ''}, r {fmt(c.get('ratio_init'), 2)} at "
        f"step 0 -> {fmt(c.get('ratio_final'), 2)} at the end; {c['reason']}"
        for c in wrong
    ]
    stuck = [c for c in wrong if c["predicted"] and not c["diverged"]]
    healthy = [c for c in stuck if verdict(c.get("ratio_init", math.nan)) == "healthy"]
    lost = [c for c in healthy if verdict(c.get("ratio_final", math.nan)) == "vanishing"]
    kept = [c for c in healthy if verdict(c.get("ratio_final", math.nan)) == "healthy"]
    said = []
    if lost:
        said.append(f"{len(lost)} started healthy (r at step 0 within the healthy band) and ended vanishing: "
                    "training, not the initialization the theory describes, lost their gradient")  # fmt: skip
    if kept:
        said.append(f"{len(kept)} kept a healthy gradient (r within the healthy band at step 0 and at the end) and "
                    "still learned too little: their gradient flowed, yet they did not train in these steps (depth "
                    f"{', '.join(str(d) for d in sorted({c['depth'] for c in kept}))}, width {width})")  # fmt: skip
    summary = (
        f"\n\nOf the {len(stuck)} cells stuck although predicted trainable, " + "; ".join(said) + "." if said else ""
    )
    return "Where it is wrong:\n\n" + "\n".join(lines) + summary


def _setting(ctx: Context) -> tuple[str, str, float]:
    """(activation spec, its name, sigma_b^2) of the runs."""
    act = activations.get(ctx.setting("act"))
    return act.spec, act.name, float(ctx.setting("sigma_b2"))


def cells_of(ctx: Context, seeds=None) -> list[dict]:
    """The judged grid (``judge``) of the runs the claim is judged on, over ``seeds``."""
    spec, _, sigma_b2 = _setting(ctx)
    return judge(runs(ctx), spec, sigma_b2, ctx.chance(), seeds)


def _seeds_of(ctx: Context) -> list:
    return sorted({r["seed"] for r in runs(ctx)})


def reproduction(ctx: Context) -> dict | None:
    """The report's own runs beside the committed rows of the same (init, depth, seed): how many are identical to
    every digit, and how many runs' trained verdicts (progress against their own reference) differ."""
    if not ctx.committed:
        return None
    mine, chance = export(ctx), ctx.chance()
    keys = {(r["init"], r["depth"], r["seed"]) for r in mine}
    theirs = [r for r in ctx.committed["rows"] if (r["init"], r["depth"], r["seed"]) in keys]
    ours, committed = progress(mine, chance), progress(theirs, chance)
    by_key = {(r["init"], r["depth"], r["seed"]): r for r in theirs}
    same = [r for r in mine if by_key.get((r["init"], r["depth"], r["seed"])) == r]
    flipped = [
        k for k in ours if k in committed and (ours[k] >= TRAINED_FRACTION) != (committed[k] >= TRAINED_FRACTION)
    ]
    return {"runs": len(mine), "found": len(theirs), "identical": len(same), "flipped": flipped}


def analyze(ctx: Context) -> str:
    """The setting, the grid table, the agreement beside the baselines and its failures, the per-layer factor,
    where the table comes from, and the figure."""
    cells = cells_of(ctx)
    counts = agreements(cells)
    errors = [log_error(f, t) for c in cells for f, t in c["factors"]]
    spec, _, sigma_b2 = _setting(ctx)
    critical = theory.critical_sigma_w2(spec, sigma_b2)
    return paragraphs(
        f"{ctx.setting('act')}, sigma_b^2 = {sigma_b2:g} (initial biases N(0, sigma_b^2)), width "
        f"{ctx.setting('width')}, data `{ctx.setting('data')}` (a linear teacher: 10 classes a linear classifier "
        f"separates), {ctx.setting('optimizer')} lr {ctx.setting('lr')} momentum {ctx.setting('momentum')}, batch "
        f"{ctx.setting('batch_size')}, {ctx.setting('steps')} steps, seeds {', '.join(map(str, _seeds_of(ctx)))}. "
        "Weights N(0, sigma_w^2 / fan_in); the theory uses each cell's measured sigma_w^2 (fan_in mean(W^2) of its "
        "deep layers, median over seeds). c* is the correlation map's stable fixed point (1 when ordered), chi_c the "
        f"slope there, xi_c = -1/ln chi_c (`lab/theory/correlation.py`); critical sigma_w^2 = {critical:.3f}. "
        f"A run *trained* if it learned at least {TRAINED_FRACTION:.0%} of what the depth-{min(c['depth'] for c in cells)} "
        "net of the same sigma_w^2 and seed learned above chance (final accuracy on the whole training split), a "
        "criterion fixed before the grid ran; a cell trained if the median over its seeds did. The theory predicts "
        "it trains if depth < 6 xi_c. Cells: median train accuracy; (ref.) the reference depth, not judged; ~ where "
        "the seeds disagree; **bold ✗** where the prediction is wrong.",
        _source_text(ctx),
        grid_table(ctx, cells),
        f"'depth < 6 xi_c' is right in {counts['theory']} of {counts['cells']} judged cells; the best rule on depth "
        f"alone ({best_depth_rule(cells)}) in {counts['depth']}, the best rule on sigma_w^2 alone in "
        f"{counts['sigma']}. Both baselines are fitted to this very table, the theory to nothing. "
        + failures_text(cells, ctx.setting("width")),
        f"Per-layer factor of ||delta|| at initialization, theory sqrt(chi) along q vs measurement: {agreement(errors)}.",
        grid_figure(ctx, cells),
    )


def _source_text(ctx: Context) -> str:
    """Where the table comes from: the committed full grid (and whether the report's reruns reproduce it), or
    the report's own runs."""
    found = reproduction(ctx)
    if found is None:
        return (
            "The table is the report's own grid; the full grid (`make report ONLY=edge_of_chaos FULL=1`) has no "
            "committed table here."
        )
    differs = [k for k, v in ctx.committed.get("fixed", {}).items() if ctx.sweep.fixed.get(k) != v]
    return (
        f"**The table below is committed**, not rerun by `make report`: the full grid ({len(ctx.committed['rows'])} "
        f"runs, {ctx.committed['sweep']}.toml) exceeds the report's budget; `{ctx.committed['made_by']}` reruns it "
        f"and rewrites [{FULL_TABLE}.json]({FULL_TABLE}.json). `make report` reruns {found['runs']} of its runs "
        f"(sigma_w^2 = {', '.join(f'{nominal_sigma_w2(i):.2f}' for i in ctx.sweep.grid['init'])} at depth "
        f"{', '.join(map(str, ctx.sweep.grid['depth']))}, seed {', '.join(map(str, ctx.seeds))}): "
        f"{found['identical']} of {found['found']} are identical to every digit (same machine and BLAS: bitwise), "
        f"and {len(found['flipped'])} changed its trained verdict."
        + (f" The committed table's settings differ from this sweep's in: {', '.join(differs)}." if differs else "")
    )


def check(ctx: Context) -> Check:
    """The claim tested on the committed full table (else this sweep's runs), see ``check_cells``; with a
    committed table, also whether the report's reruns reproduce its trained verdicts."""
    spec, _, sigma_b2 = _setting(ctx)
    rows, chance = runs(ctx), ctx.chance()
    parts = check_cells(lambda seeds: judge(rows, spec, sigma_b2, chance, seeds), _seeds_of(ctx),
                        theory.critical_sigma_w2(spec, sigma_b2))  # fmt: skip
    found = reproduction(ctx)
    if found is not None:
        parts.parts.append(
            judged(
                "the report's reruns reproduce the committed table's trained verdicts",
                Margin(float(-len(found["flipped"])) if found["found"] else math.nan, "runs"),
                f"{found['found']} of {found['runs']} reruns found in the table, {found['identical']} identical to every "
                f"digit, {len(found['flipped'])} with another verdict",
            )
        )
    return parts


def check_cells(cells_for, seeds, critical: float) -> Check:
    """The claim's parts on the cells ``cells_for(seeds)`` gives (None: all seeds): no net trains beyond 6 xi_c
    (margin: minus the cells that did), 6 xi_c beats the best rule on
    depth alone and the best on sigma_w^2 alone (margins in cells), the deepest trained net sits at criticality
    (margin in depths of the grid), and the per-layer factor follows sqrt(chi) (in decades)."""
    cells = cells_for(None)
    counts = agreements(cells)
    errors = [log_error(f, t) for c in cells for f, t in c["factors"]]
    noisy = sum(c["noisy"] for c in judged_cells(cells))

    def beats(key: str):
        return lambda s: float((lambda a: a["theory"] - a[key])(agreements(cells_for(s))))

    def at_criticality(s) -> float:  # in depths of the grid: -1 where the critical net is only as deep
        judged = cells_for(s)
        deepest, grid = deepest_trained(judged), sorted({c["depth"] for c in judged})
        sigmas = list(deepest)
        if not sigmas:
            return math.nan
        near = min(sigmas, key=lambda v: abs(v - critical))
        rank = {d: i for i, d in enumerate(grid)} | {0: -1}  # 0: nothing trained
        return float(rank[deepest[near]] - max(rank[deepest[sigmas[0]]], rank[deepest[sigmas[-1]]]) - 1)

    deepest = deepest_trained(cells)
    sigmas = list(deepest)
    near = min(sigmas, key=lambda v: abs(v - critical)) if sigmas else math.nan
    shown = [s for s in sigmas if s in (sigmas[0], near, sigmas[-1])]
    right = f"6 xi_c right in {counts['theory']} of {counts['cells']} judged cells ({noisy} where the seeds disagree)"
    beyond = [c for c in judged_cells(cells) if c["trained"] and not c["predicted"]]
    return Check(
        [
            judged(
                "no net trains deeper than 6 xi_c (the bound)",
                seed_margin(
                    lambda s: float(-sum(c["trained"] and not c["predicted"] for c in judged_cells(cells_for(s)))),
                    seeds,
                    "cells",
                ),  # fmt: skip
                f"{len(beyond)} of {sum(not c['predicted'] for c in judged_cells(cells))} judged cells at or beyond 6 "
                "xi_c trained" + "".join(f"; sigma_w^2 = {c['sigma_w2']:.3f} at depth {c['depth']}" for c in beyond),
            ),
            judged(
                "depth < 6 xi_c predicts trainability better than any rule on depth alone",
                seed_margin(beats("depth"), seeds, "cells"),
                f"{right}; the best depth-only rule ({best_depth_rule(cells)}) in {counts['depth']}",
            ),
            judged(
                "... and better than any rule on sigma_w^2 alone",
                seed_margin(beats("sigma"), seeds, "cells"),
                f"{right}; the best sigma_w^2-only rule in {counts['sigma']}",
            ),
            judged(
                "the deepest trained net is at criticality, deeper than at the grid's edges",
                seed_margin(at_criticality, seeds, "depths of the grid"),
                "deepest trained: " + ", ".join(f"{deepest[s]} at sigma_w^2 = {s:.2f}" for s in shown),
            ),
            judged(
                f"the measured per-layer factor follows sqrt(chi) within {FACTOR_WITHIN:.0%} (median)",
                seed_margin(
                    lambda s: (
                        math.log10(1 + FACTOR_WITHIN)
                        - median(log_error(f, t) for c in cells_for(s) for f, t in c["factors"])
                    ),
                    seeds,
                    "decades",
                ),  # fmt: skip
                agreement(errors),
            ),
        ]
    )


FINDING = Finding(
    "edge_of_chaos",
    "The edge of chaos: trainable depth against 6 xi_c",
    "A tanh net (sigma_b^2 = 0.05) trains only if it is shallower than about 6 xi_c, the depth over which two "
    "inputs' correlation is forgotten; xi_c diverges at the critical sigma_w^2 (1.76), so only there do very deep "
    "nets train, and the boundary 6 xi_c tells trainable from untrainable better than depth or sigma_w^2 alone. "
    "At initialization each layer multiplies the gradient by sqrt(chi_1) (< 1 ordered, > 1 chaotic).",
    "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein, Deep information propagation, ICLR 2017 (figure 5); Poole et "
    "al. 2016.",
    analyze,
    check,
    full=FULL_TABLE,
    export=export,
)
