"""Finding 2: Glorot & Bengio (2010): test error and per-layer gradient and activation statistics, standard vs
normalized (Xavier) initialization, beside the paper's Table 1."""

from __future__ import annotations

import numpy as np

from ..lab import plots
from ..lab.report import fmt, markdown_table, pct
from .common import Context, Finding, delta_profile, geometric_median, layer_field, median, paragraphs

PAPER_TABLE1 = {  # Glorot & Bengio (2010), Table 1: test error (%), 5 hidden layers; N = normalized init
    ("sigmoid", "standard"): {"Shapeset": 82.61, "MNIST": 2.21, "CIFAR-10": 57.28, "ImageNet": 70.66},
    ("tanh", "standard"): {"Shapeset": 27.15, "MNIST": 1.76, "CIFAR-10": 55.9, "ImageNet": 70.58},
    ("tanh", "xavier_uniform"): {"Shapeset": 15.60, "MNIST": 1.64, "CIFAR-10": 52.92, "ImageNet": 68.57},
    ("softsign", "standard"): {"Shapeset": 16.27, "MNIST": 1.64, "CIFAR-10": 55.78, "ImageNet": 69.14},
    ("softsign", "xavier_uniform"): {"Shapeset": 16.06, "MNIST": 1.72, "CIFAR-10": 53.8, "ImageNet": 68.13},
}


def _pairs(ctx: Context) -> list[tuple[str, str]]:
    return [(act, init) for act in ctx.sweep.grid["act"] for init in ctx.sweep.grid["init"]]


def test_errors(ctx: Context) -> dict:
    """(activation, init) -> median test error over seeds."""
    return {(a, i): 1 - median(r["test_accuracy"] for r in ctx.where(act=a, init=i)) for a, i in _pairs(ctx)}


def init_ratios(ctx: Context) -> dict:
    """(activation, init) -> geometric median of r at step 0 over seeds."""
    return {(a, i): geometric_median(r["ratio_init"] for r in ctx.where(act=a, init=i)) for a, i in _pairs(ctx)}


def error_table(ctx: Context) -> str:
    """Our test error and r at init and at the end, beside the paper's MNIST and Shapeset errors."""
    body = []
    for act, init in _pairs(ctx):
        group = ctx.where(act=act, init=init)
        paper = PAPER_TABLE1.get((act, init), {})
        body.append(
            [
                act,
                "standard U[-1/sqrt(n), 1/sqrt(n)]" if init == "standard" else "normalized (Xavier uniform)",
                pct(1 - median(r["test_accuracy"] for r in group)),
                f"{paper['MNIST']}%" if paper else "not in the paper",
                f"{paper['Shapeset']}%" if paper else "-",
                fmt(geometric_median(r["ratio_init"] for r in group)),
                fmt(geometric_median(r["ratio_final"] for r in group)),
            ]
        )
    head = [
        "activation",
        "init",
        "test error (ours, MNIST-1D)",
        "paper: MNIST",
        "paper: Shapeset",
        "r at init",
        "r at end",
    ]
    return markdown_table(head, body)


def layer_profiles(ctx: Context) -> list[dict]:
    """For the first seed's run of each (activation, init): delta_l / delta_L at step 0, activation stds at the end."""
    profiles = []
    for act, init in _pairs(ctx):
        row = ctx.where(act=act, init=init, seed=ctx.sweep.grid["seed"][0])
        if row:
            records = ctx.records(row[0])
            profiles.append(
                {
                    "act": act,
                    "init": init,
                    "deltas": delta_profile(records[0]),
                    "stds": layer_field(records[-1], "act_std"),
                    "step": records[-1]["step"],
                }
            )
    return profiles


def layer_table(ctx: Context, profiles: list[dict]) -> str:
    """One row per profile: every layer's delta ratio, then every layer's activation std."""
    depth = ctx.setting("depth")
    head = (
        ["activation", "init"]
        + [f"delta {i}/{depth}" for i in range(1, depth + 1)]
        + [f"act std {i}" for i in range(1, depth + 1)]
    )
    body = [[p["act"], p["init"]] + [fmt(v) for v in p["deltas"]] + [fmt(s) for s in p["stds"]] for p in profiles]
    return markdown_table(head, body)


def layer_figure(ctx: Context, profiles: list[dict]) -> str:
    """Left: delta profiles at step 0; right: activation stds at the end (colour = activation, line style =
    init, one legend outside the plots). Its link."""
    from matplotlib.lines import Line2D

    fig, axes = plots.figure(1, 2, figsize=(12, 4))
    acts, inits = ctx.sweep.grid["act"], ctx.sweep.grid["init"]
    for p in profiles:
        layers = np.arange(1, len(p["deltas"]) + 1)
        style = dict(color=plots.activation_color(p["act"], acts), linestyle=plots.init_linestyle(p["init"], inits))
        axes[0].plot(layers, p["deltas"], marker="o", **style)
        axes[1].plot(layers, p["stds"], marker="o", **style)
    depth = ctx.setting("depth")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(rf"$\|\delta_l\| \,/\, \|\delta_{{{depth}}}\|$ at step 0")
    axes[1].set_ylabel(f"std of activations at step {profiles[-1]['step'] if profiles else 'the end'}")
    for ax in axes:
        ax.set_xticks(range(1, depth + 1))
        ax.set_xlabel("hidden layer $l$")
        ax.grid(alpha=0.3)
    names = {"standard": r"standard $U[\pm 1/\sqrt{n}]$", "xavier_uniform": "normalized (Xavier)"}
    handles = [Line2D([], [], color=plots.activation_color(a, acts), lw=2, label=a) for a in acts] + [
        Line2D([], [], color="black", linestyle=plots.init_linestyle(i, inits), label=names.get(i, i)) for i in inits
    ]
    axes[1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return ctx.figure(fig, "layers")


def measured(ctx: Context) -> str:
    """Which activations the normalized init helped (lower error, flatter profile), and the worst net."""
    errors, ratios = test_errors(ctx), init_ratios(ctx)
    acts = ctx.sweep.grid["act"]
    helped = [a for a in acts if errors.get((a, "xavier_uniform"), 1) < errors.get((a, "standard"), 0)]
    flatter = [a for a in acts if ratios.get((a, "xavier_uniform"), 0) > ratios.get((a, "standard"), 1)]
    worst = max(errors, key=lambda k: errors[k])
    return (
        f"**Measured.** The normalized init lowered the test error for {', '.join(helped) or 'no activation'} "
        f"and made the gradient profile flatter (larger r) for {', '.join(flatter) or 'none'}; the worst net is "
        f"{worst[0]} with the {worst[1]} init ({pct(errors[worst])} error). The paper's orderings: sigmoid worst, "
        "normalized init best for tanh."
    )


def analyze(ctx: Context) -> str:
    """The error table beside the paper's, the per-layer table and figure, and what was measured."""
    depth = ctx.setting("depth")
    profiles = layer_profiles(ctx)
    link = layer_figure(ctx, profiles)
    return paragraphs(
        f"{ctx.setting('data')}, {depth} hidden layers of width {ctx.setting('width')} (the paper used 1000; a smaller width keeps "
        f"the whole report to minutes on 2 CPU cores), SGD with momentum, {ctx.setting('steps')} steps; test error is the median over "
        f"{len(ctx.sweep.grid['seed'])} seeds. The paper's numbers are on MNIST and Shapeset-3x2, not MNIST-1D: "
        "compare the ordering, not the values.",
        error_table(ctx),
        f"Back-propagated gradients and activations per layer (seed {ctx.sweep.grid['seed'][0]}): delta_l / delta_{depth} "
        "at step 0 and the std of each layer's activations at the end of training.",
        layer_table(ctx, profiles),
        measured(ctx),
        link,
    )


FINDING = Finding(
    "glorot_bengio",
    "Glorot & Bengio (2010): standard vs normalized initialization",
    "With the standard init, back-propagated gradients shrink toward the input and sigmoid nets train worst; "
    "the normalized (Xavier) init keeps gradients of similar size in every layer and helps tanh most.",
    "Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks, AISTATS 2010.",
    analyze,
)
