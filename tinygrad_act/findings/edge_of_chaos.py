"""Finding 8: tanh's per-layer gradient factor against sqrt(chi_1), and trainability against depth 6 xi
(Poole et al. 2016; Schoenholz et al. 2017)."""

from __future__ import annotations

import numpy as np

from ..lab import plots, theory
from ..lab.report import fmt, markdown_table, number, pct
from ..nn import activations
from .common import Context, Finding, agreement, log_error, paragraphs

TRAINED_ACCURACY = 0.2  # a run "trains" if its final train accuracy reaches twice chance (10 classes)
SIGMA_W2_CURVE = np.linspace(0.2, 9.5, 120)  # where the figure draws the theory curves


def sigma_w2(init: str) -> float:
    """The weight variance of ``xavier_normal:gain=g`` on the square hidden layers: g^2."""
    gain = float(init.split("gain=")[1]) if "gain=" in init else 1.0
    return gain * gain


def chi1_at_fixed_point(act, variance: float) -> float:
    """chi_1 at the fixed point q* of the variance map, sigma_b^2 = 0."""
    return theory.chi1(act, theory.fixed_point(act, variance).q_star, variance)


def measured_points(ctx: Context) -> list[dict]:
    """One per run: sigma_w^2, depth, train accuracy, whether it trained, the per-layer factor measured and in theory."""
    points = []
    for init in ctx.sweep.grid["init"]:
        for depth in ctx.sweep.grid["depth"]:
            for r in ctx.where(init=init, depth=depth)[:1]:
                accuracy = number(r["train_accuracy"])
                points.append(
                    {
                        "init": init,
                        "sigma_w2": sigma_w2(init),
                        "depth": depth,
                        "accuracy": r["train_accuracy"],
                        "trained": accuracy >= TRAINED_ACCURACY,
                        "measured": number(r["per_layer_factor_init"]),
                        "predicted": number(r["predicted_per_layer_factor"]),
                    }
                )
    return points


def phase_table(ctx: Context, act, points: list[dict]) -> str:
    """Per sigma_w^2: chi_1, xi, 6 xi, then per depth the measured / theory factor and whether the net trained."""
    depths = ctx.sweep.grid["depth"]
    body = []
    for init in ctx.sweep.grid["init"]:
        chi = chi1_at_fixed_point(act, sigma_w2(init))
        xi = theory.depth_scale(chi)
        cells = [f"{sigma_w2(init):.2f}", fmt(chi, 3), fmt(xi, 3), fmt(6 * xi, 3)]
        for depth in depths:
            point = next((p for p in points if p["init"] == init and p["depth"] == depth), None)
            if point is None:
                cells.append("-")
                continue
            cells.append(
                f"{fmt(point['measured'], 3)} / {fmt(point['predicted'], 3)}, {pct(point['accuracy'])} "
                f"{'trains' if point['trained'] else 'stuck'}"
            )
        body.append(cells)
    return markdown_table(["sigma_w^2", "chi_1", "xi", "6 xi"] + [f"depth {d}" for d in depths], body)


def phase_figure(ctx: Context, act, points: list[dict]) -> str:
    """Left: per-layer factor against sigma_w^2, theory curve and measured; right: trains/stuck against 6 xi."""
    fig, axes = plots.figure(1, 2, figsize=(11, 4))
    chis = [chi1_at_fixed_point(act, s) for s in SIGMA_W2_CURVE]
    axes[0].plot(SIGMA_W2_CURVE, np.sqrt(chis), color="black", label="theory sqrt(chi_1) at q*")
    for depth, marker in zip(ctx.sweep.grid["depth"], "os^v"):
        shown = [p for p in points if p["depth"] == depth]
        axes[0].plot(
            [p["sigma_w2"] for p in shown], [p["measured"] for p in shown], marker, label=f"measured, depth {depth}"
        )
    axes[0].axhline(1, color="gray", lw=0.8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("sigma_w^2")
    axes[0].set_ylabel("per-layer factor of ||delta||")
    plots.legend(axes[0], fontsize=7)
    xis = np.array([theory.depth_scale(c) for c in chis])
    axes[1].plot(SIGMA_W2_CURVE, np.minimum(6 * xis, 1e3), color="black", label="6 xi")
    for trained, marker, label in ((True, "o", "trains"), (False, "x", "stuck")):
        shown = [p for p in points if p["trained"] == trained]
        axes[1].plot([p["sigma_w2"] for p in shown], [p["depth"] for p in shown], marker, label=label)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_ylim(5, 200)
    axes[1].set_xlabel("sigma_w^2")
    axes[1].set_ylabel("depth")
    plots.legend(axes[1], fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    return ctx.figure(fig, "phase")


def analyze(ctx: Context) -> str:
    """The setting, the phase table, theory against measurement, trainability against 6 xi, and the figure."""
    act = activations.get(ctx.setting("act"))
    points = measured_points(ctx)
    errors = [log_error(p["measured"], p["predicted"]) for p in points]
    consistent = [
        (p["depth"] < 6 * theory.depth_scale(chi1_at_fixed_point(act, p["sigma_w2"]))) == p["trained"] for p in points
    ]
    link = phase_figure(ctx, act, points)
    return paragraphs(
        f"{act.name}, sigma_b^2 = 0, width {ctx.setting('width')}, SGD with momentum for "
        f"{ctx.setting('steps')} steps. chi_1 and xi = -1/ln chi_1 at the fixed point q*; each cell: measured "
        "per-layer factor r^(1/(L-1)) / theory (along the actual q trajectory), then the final train accuracy "
        f"('trains' = at least {TRAINED_ACCURACY:.0%}, twice chance).",
        phase_table(ctx, act, points),
        f"Per-layer factor, theory vs measurement: {agreement(errors)}.\n"
        f"Trainability agrees with 'depth < 6 xi' in {sum(consistent)} of {len(consistent)} runs.",
        link,
    )


FINDING = Finding(
    "edge_of_chaos",
    "The edge of chaos",
    "For tanh, the per-layer gradient factor is sqrt(chi_1); chi_1 < 1 is ordered (vanishing), chi_1 > 1 chaotic "
    "(exploding); a net trains only if it is shallower than about 6 xi, xi = -1/ln chi_1.",
    "Poole et al. 2016; Schoenholz et al., Deep information propagation, ICLR 2017.",
    analyze,
)
