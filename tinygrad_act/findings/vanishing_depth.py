"""Finding 1: r at step 0 against depth for each activation, measured beside theory and the sigmoid bound 0.25^(L-1)."""

from __future__ import annotations

from ..lab import stats
from ..lab.show.format import fmt, markdown_table
from .common import Check, Context, Finding, Part, agreement, geometric_median, log_error, median

# The claim's "ReLU family": every activation of the grid that is neither sigmoid nor tanh (each with its
# recommended init, init = auto). "r near 1" is the project's healthy band (lab/stats.py), judged on the
# geometric median r over seeds that the table shows.
SATURATING = ("sigmoid", "tanh")


def ratio_table(ctx: Context) -> tuple[str, list[float]]:
    """Per activation: r at each depth and the per-layer factor at the deepest, measured / theory; and the errors."""
    depths = ctx.sweep.grid["depth"]
    head = (
        ["activation (init auto)"]
        + [f"r at depth {d}: measured / theory" for d in depths]
        + [f"factor per layer (depth {max(depths)}): measured / theory"]
    )
    body, errors = [], []
    for act in ctx.sweep.grid["act"]:
        cells = [act]
        for depth in depths:
            group = ctx.where(act=act, depth=depth)
            measured = geometric_median(r["ratio_init"] for r in group)
            predicted = geometric_median(r["predicted_ratio"] for r in group)
            errors += [log_error(r["ratio_init"], r["predicted_ratio"]) for r in group]
            cells.append(f"{fmt(measured)} / {fmt(predicted)}")
        deep = ctx.where(act=act, depth=max(depths))
        cells.append(
            f"{fmt(median(r['per_layer_factor_init'] for r in deep), 3)} / "
            f"{fmt(median(r['predicted_per_layer_factor'] for r in deep), 3)}"
        )
        body.append(cells)
    return markdown_table(head, body), errors


def sigmoid_bound_table(ctx: Context) -> str:
    """Per depth: the bound 0.25^(L-1) (sigmoid' <= 1/4 in every layer) beside the measured sigmoid r."""
    rows = [
        [d, fmt(0.25 ** (d - 1)), fmt(geometric_median(r["ratio_init"] for r in ctx.where(act="sigmoid", depth=d)))]
        for d in ctx.sweep.grid["depth"]
    ]
    return markdown_table(["depth L", "0.25^(L-1)", "measured r (sigmoid, Xavier)"], rows)


def analyze(ctx: Context) -> str:
    """The two tables, the agreement with theory, and the sweep's own figures."""
    ratios, errors = ratio_table(ctx)
    sigmoid_factor = median(r["per_layer_factor_init"] for r in ctx.where(act="sigmoid"))
    text = [
        f"r = ||dL/dz|| of hidden layer 1 / that of hidden layer L, at step 0 (geometric median over "
        f"{len(ctx.sweep.grid.get('seed', [0]))} seeds, width {ctx.setting('width')}); "
        "theory: the mean-field prediction from each run's own weight variances (lab/theory/mean_field.py).",
        "",
        ratios,
        "",
        f"Theory vs measurement: {agreement(errors)}.",
        "",
        "The sigmoid bound: sigmoid' <= 1/4, so L-1 layers can shrink the gradient by up to 0.25^(L-1) through the "
        "activation alone. Xavier weights (sigma_w^2 ~ 1) give nothing back, and sigmoid' reaches 1/4 only at 0: "
        f"the measured factor per layer is {fmt(sigmoid_factor, 3)} "
        "(theory: sqrt(sigma_w^2 E[sigmoid'(z)^2])), so r falls faster than 0.25^(L-1):",
        "",
        sigmoid_bound_table(ctx),
    ]
    for figure in ("ratio_vs_depth.png", "ratio_heatmap.png"):
        link = ctx.copy_sweep_figure(figure)
        if link:
            text += ["", link]
    return "\n".join(text)


def _ratios(ctx: Context, act: str) -> list[tuple[int, float, float]]:
    """(depth, geometric median r, median per-layer factor) of one activation at each depth of the grid."""
    return [
        (
            depth,
            geometric_median(r["ratio_init"] for r in ctx.where(act=act, depth=depth)),
            median(r["per_layer_factor_init"] for r in ctx.where(act=act, depth=depth)),
        )
        for depth in ctx.sweep.grid["depth"]
    ]


def _listing(points) -> str:
    """``r = 3.0e-03 (vanishing) at depth 5, ...``: each depth's r and its verdict."""
    return ", ".join(f"r = {fmt(r)} ({stats.verdict(r)}) at depth {d}" for d, r, _ in points)


def check(ctx: Context) -> Check:
    """Sigmoid vanishes at every depth and falls with it; tanh keeps more than sigmoid at every depth; each
    activation of the ReLU family is healthy at every depth (the project's verdict rule on the table's r)."""
    acts = ctx.sweep.grid["act"]
    parts = []
    if "sigmoid" in acts:
        points = _ratios(ctx, "sigmoid")
        ratios = [r for _, r, _ in points]
        falls = all(b < a for a, b in zip(ratios, ratios[1:]))
        vanishes = all(stats.verdict(r) == "vanishing" for r in ratios)
        factors = ", ".join(fmt(f, 3) for _, _, f in points)
        parts.append(
            Part(
                "sigmoid vanishes exponentially with depth",
                vanishes and falls,
                f"{_listing(points)}; r {'falls' if falls else 'does not fall'} with every added depth; "
                f"factor per layer {factors}",
            )
        )
    if {"sigmoid", "tanh"} <= set(acts):
        pairs = list(zip(_ratios(ctx, "tanh"), _ratios(ctx, "sigmoid")))
        parts.append(
            Part(
                "tanh loses less than sigmoid",
                all(t > s for (_, t, _), (_, s, _) in pairs),
                ", ".join(f"tanh r = {fmt(t)} vs sigmoid {fmt(s)} at depth {d}" for (d, t, _), (_, s, _) in pairs),
            )
        )
    for act in (a for a in acts if a not in SATURATING):
        points = _ratios(ctx, act)
        healthy = all(stats.verdict(r) == "healthy" for _, r, _ in points)
        deepest, _, factor = points[-1]
        growth = f"; factor per layer {fmt(factor, 3)} at depth {deepest}, compounded over {deepest - 1} layers"
        for depth in ctx.sweep.grid["depth"]:  # r judges step 0; say where the training that followed diverged
            group = ctx.where(act=act, depth=depth)
            gone = sum(stats.shown_verdict(r) == "diverged" for r in group)
            growth += f"; training diverged in {gone} of {len(group)} runs at depth {depth}" if gone else ""
        parts.append(
            Part(
                f"{act} keeps r near 1 (healthy, {fmt(stats.VANISHING_BELOW)} <= r <= {fmt(stats.EXPLODING_ABOVE)}) "
                "at every depth",
                healthy,
                _listing(points) + growth,
            )
        )
    return Check(parts)


FINDING = Finding(
    "vanishing_depth",
    "Vanishing through depth",
    "Sigmoid gradients vanish exponentially with depth (sigmoid' <= 1/4); tanh loses less; the ReLU family "
    "with its recommended init (He, LeCun for SELU) keeps r near 1 at any depth.",
    "Hochreiter 1991; Bengio et al. 1994; Glorot & Bengio 2010; mean field: Poole et al. 2016.",
    analyze,
    check,
)
