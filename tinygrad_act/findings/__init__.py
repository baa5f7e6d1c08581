"""The findings report: nine classic results, each reproduced by a named sweep and written up with its numbers.

``generate()`` runs (or resumes) the sweep of every finding (configs in ``experiments/*.toml``), computes
each finding's table and figures from the run directories, and writes ``experiments/README.md``. Every
number in the report comes from those runs or from theory.py; the prose around a number only states
what the number is, and each verdict of agreement is computed, not written in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.errors import UsageError
from ..lab import rundir, theory
from ..lab import sweep as sweeps
from ..lab.report import fmt, pct
from ..lab.report import markdown_table as table
from ..lab.report import number as _num
from ..nn import activations

PAPER_TABLE1 = {  # Glorot & Bengio (2010), Table 1: test error (%), 5 hidden layers; N = normalized init
    ("sigmoid", "standard"): {"Shapeset": 82.61, "MNIST": 2.21, "CIFAR-10": 57.28, "ImageNet": 70.66},
    ("tanh", "standard"): {"Shapeset": 27.15, "MNIST": 1.76, "CIFAR-10": 55.9, "ImageNet": 70.58},
    ("tanh", "xavier_uniform"): {"Shapeset": 15.60, "MNIST": 1.64, "CIFAR-10": 52.92, "ImageNet": 68.57},
    ("softsign", "standard"): {"Shapeset": 16.27, "MNIST": 1.64, "CIFAR-10": 55.78, "ImageNet": 69.14},
    ("softsign", "xavier_uniform"): {"Shapeset": 16.06, "MNIST": 1.72, "CIFAR-10": 53.8, "ImageNet": 68.13},
}


# ---- reading runs -----------------------------------------------------------------------------------------
class Context:
    """What an analysis sees: the sweep, its rows, its run directories, and where figures go."""

    def __init__(self, name: str, sweep, rows: list[dict], root: Path, figures: Path):
        self.name, self.sweep, self.rows, self.root, self.figure_dir = name, sweep, rows, root, figures
        self._records = {}

    def records(self, row) -> list[dict]:
        """A run's metrics.jsonl records (cached)."""
        run = row["run"]
        if run not in self._records:
            self._records[run] = rundir.read_records(self.root / "runs" / run)  # nan/inf restored, null = None
        return self._records[run]

    def summary(self, row) -> dict:
        """A run's summary.json (nan/inf restored; empty if missing)."""
        return rundir.read_json(self.root / "runs" / row["run"] / "summary.json") or {}

    def where(self, **match) -> list[dict]:
        """The rows whose parameters equal the given values."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]

    def figure(self, fig, suffix: str) -> str:
        """Save a figure under experiments/figures (whole or not at all) and return its Markdown link."""
        rundir.make_dir(self.figure_dir)
        name = f"{self.name}_{suffix}.png"
        fig.tight_layout()
        with rundir.atomic_file(self.figure_dir / name, "wb") as handle:
            fig.savefig(handle, format="png", dpi=100)
        return f"![{self.name} {suffix}](figures/{name})"

    def copy_sweep_figure(self, name: str) -> str | None:
        """Copy one of the sweep's own figures next to the report; its Markdown link, or None."""
        source = self.root / "figures" / name
        if not source.exists():
            return None
        rundir.make_dir(self.figure_dir)
        target = f"{self.name}_{name}"
        rundir.atomic_write(self.figure_dir / target, source.read_bytes())  # a link at the target is replaced
        return f"![{self.name} {name}](figures/{target})"


def setting(ctx: Context, key: str):
    """A run setting every run of the finding shares: its fixed value, else the experiment default."""
    from ..lab.experiment import Config

    return ctx.sweep.fixed.get(key, getattr(Config(), key))


def _legend(ax, **options):
    if ax.get_legend_handles_labels()[0]:  # an empty legend is a matplotlib warning
        ax.legend(**options)


def _subplots(*grid, figsize, **options):
    """A new matplotlib Figure and its axes, without pyplot: the caller's backend and figures are left alone."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **options)


def median(values) -> float:
    """The median of the finite values (nan if none)."""
    values = [_num(v) for v in values]
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def geometric_median(values) -> float:
    """Median on a log scale (ratios span many decades); nan if none positive."""
    logs = [math.log10(v) for v in map(_num, values) if v > 0 and math.isfinite(v)]
    return 10 ** float(np.median(logs)) if logs else math.nan


def log_error(measured, predicted) -> float:
    """|log10(measured / predicted)|: 0.1 means within 26%, 1 means a factor of 10."""
    m, p = _num(measured), _num(predicted)
    if not (m > 0 and p > 0 and math.isfinite(m) and math.isfinite(p)):
        return math.nan
    return abs(math.log10(m / p))


def _mean(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _last_measured(records: list[dict]) -> dict:
    """The last record with per-layer statistics (a diverged run's final record may have none)."""
    return next((r for r in reversed(records) if r["layers"][0].get("delta_norm") is not None), records[-1])


def relative_to_last(values: np.ndarray) -> np.ndarray:
    """values / values[-1]; nan where the last value is 0 or missing (a profile that vanished entirely)."""
    last = values[-1] if len(values) else math.nan
    return values / last if last and math.isfinite(last) else np.full(len(values), math.nan)


def layer_field(record: dict, field: str, hidden_only: bool = True) -> np.ndarray:
    """One per-layer statistic of a record as an array (hidden layers only by default)."""
    layers = record["layers"][:-1] if hidden_only else record["layers"]
    return np.array([_num(layer.get(field)) for layer in layers])


def agreement(errors) -> str:
    """A sentence on how far measurement is from theory, from the list of |log10 ratio| errors."""
    errors = [e for e in errors if not math.isnan(e)]
    if not errors:
        return "no run could be compared with theory"
    med, worst = float(np.median(errors)), max(errors)
    return (
        f"median |log10(measured/predicted)| = {med:.2f} (a factor of {10**med:.2f}), "
        f"worst {worst:.2f} (a factor of {10**worst:.2g}) over {len(errors)} runs"
    )


# ---- the findings -----------------------------------------------------------------------------------------
@dataclass
class Finding:
    """One finding: its name (= its sweep config), title, claim, source and analysis."""

    name: str
    title: str
    claim: str
    source: str
    analyze: object  # Context -> markdown body


def vanishing_depth(ctx: Context) -> str:
    """Finding 1: r at step 0 vs depth per activation, measured beside theory and the 0.25^(L-1) bound."""
    acts = ctx.sweep.grid["act"]
    depths = ctx.sweep.grid["depth"]
    head = (
        ["activation (init auto)"]
        + [f"r at depth {d}: measured / theory" for d in depths]
        + [f"factor per layer (depth {max(depths)}): measured / theory"]
    )
    body, errors = [], []
    for act in acts:
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
    sigmoid_rows = [
        [d, fmt(0.25 ** (d - 1)), fmt(geometric_median(r["ratio_init"] for r in ctx.where(act="sigmoid", depth=d)))]
        for d in depths
    ]
    text = [
        f"r = ||dL/dz|| of hidden layer 1 / that of hidden layer L, at step 0 (geometric median over "
        f"{len(ctx.sweep.grid.get('seed', [0]))} seeds, width {setting(ctx, 'width')}); "
        "theory: the mean-field prediction from each run's own weight variances (theory.py).",
        "",
        table(head, body),
        "",
        f"Theory vs measurement: {agreement(errors)}.",
        "",
        "The sigmoid bound: sigmoid' <= 1/4, so L-1 layers can shrink the gradient by up to 0.25^(L-1) through the "
        "activation alone. Xavier weights (sigma_w^2 ~ 1) give nothing back, and sigmoid' reaches 1/4 only at 0: "
        f"the measured factor per layer is {fmt(median(r['per_layer_factor_init'] for r in ctx.where(act='sigmoid')), 3)} "
        "(theory: sqrt(sigma_w^2 E[sigmoid'(z)^2])), so r falls faster than 0.25^(L-1):",
        "",
        table(["depth L", "0.25^(L-1)", "measured r (sigmoid, Xavier)"], sigmoid_rows),
    ]
    for figure in ("ratio_vs_depth.png", "ratio_heatmap.png"):
        link = ctx.copy_sweep_figure(figure)
        if link:
            text += ["", link]
    return "\n".join(text)


def glorot_bengio(ctx: Context) -> str:
    """Finding 2: test error and per-layer gradient/activation statistics, standard vs normalized init."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for init in ctx.sweep.grid["init"]:
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
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    stats = []
    for act in ctx.sweep.grid["act"]:
        for init, style in zip(ctx.sweep.grid["init"], ("--", "-")):
            row = ctx.where(act=act, init=init, seed=ctx.sweep.grid["seed"][0])
            if not row:
                continue
            records = ctx.records(row[0])
            deltas = layer_field(records[0], "delta_norm")
            stds = layer_field(records[-1], "act_std")
            layers = np.arange(1, len(deltas) + 1)
            label = f"{act}, {init}"
            line = axes[0].plot(layers, relative_to_last(deltas), style, marker="o", label=label)[0]
            axes[1].plot(layers, stds, style, marker="o", color=line.get_color(), label=label)
            stats.append([act, init] + [fmt(v) for v in relative_to_last(deltas)] + [fmt(s) for s in stds])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("||delta_l|| / ||delta_5|| at step 0")
    axes[1].set_ylabel(f"std of activations at step {records[-1]['step']}")
    for ax in axes:
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7)
    link = ctx.figure(fig, "layers")
    errors = {
        (a, i): 1 - median(r["test_accuracy"] for r in ctx.where(act=a, init=i))
        for a in ctx.sweep.grid["act"]
        for i in ctx.sweep.grid["init"]
    }
    ratios = {
        (a, i): geometric_median(r["ratio_init"] for r in ctx.where(act=a, init=i))
        for a in ctx.sweep.grid["act"]
        for i in ctx.sweep.grid["init"]
    }
    helped = [a for a in ctx.sweep.grid["act"] if errors.get((a, "xavier_uniform"), 1) < errors.get((a, "standard"), 0)]
    flatter = [
        a for a in ctx.sweep.grid["act"] if ratios.get((a, "xavier_uniform"), 0) > ratios.get((a, "standard"), 1)
    ]
    worst = max(errors, key=lambda k: errors[k])
    measured = (
        f"**Measured.** The normalized init lowered the test error for {', '.join(helped) or 'no activation'} "
        f"and made the gradient profile flatter (larger r) for {', '.join(flatter) or 'none'}; the worst net is "
        f"{worst[0]} with the {worst[1]} init ({pct(errors[worst])} error). The paper's orderings: sigmoid worst, "
        "normalized init best for tanh."
    )
    depth = setting(ctx, "depth")
    width = setting(ctx, "width")
    stat_head = (
        ["activation", "init"]
        + [f"delta {i}/{depth}" for i in range(1, depth + 1)]
        + [f"act std {i}" for i in range(1, depth + 1)]
    )
    return "\n".join(
        [
            f"{setting(ctx, 'data')}, {depth} hidden layers of width {width} (the paper used 1000; a smaller width keeps "
            f"the whole report to minutes on 2 CPU cores), SGD with momentum, {ctx.sweep.fixed.get('steps')} steps; test error is the median over "
            f"{len(ctx.sweep.grid['seed'])} seeds. The paper's numbers are on MNIST and Shapeset-3x2, not MNIST-1D: "
            "compare the ordering, not the values.",
            "",
            table(
                [
                    "activation",
                    "init",
                    "test error (ours, MNIST-1D)",
                    "paper: MNIST",
                    "paper: Shapeset",
                    "r at init",
                    "r at end",
                ],
                body,
            ),
            "",
            "Back-propagated gradients and activations per layer (seed 0): delta_l / delta_5 at step 0 and the std of "
            "each layer's activations at the end of training.",
            "",
            table(stat_head, stats),
            "",
            measured,
            "",
            link,
        ]
    )


def he_2015(ctx: Context) -> str:
    """Finding 3: the Xavier/He gap at init against 2^((L-1)/2), and whether each trains."""
    depth = setting(ctx, "depth")
    gap_theory = 2 ** ((depth - 1) / 2)
    body, gaps = [], []
    for seed in ctx.sweep.grid["seed"]:
        xavier, he = ctx.where(init="xavier_normal", seed=seed), ctx.where(init="he_normal", seed=seed)
        if xavier and he:
            gap = _num(he[0]["ratio_init"]) / _num(xavier[0]["ratio_init"])
            gaps.append(gap)
            body.append(
                [
                    seed,
                    fmt(xavier[0]["ratio_init"]),
                    fmt(he[0]["ratio_init"]),
                    fmt(gap),
                    fmt(gap / gap_theory, 3),
                    fmt(xavier[0]["final_loss"], 3),
                    fmt(he[0]["final_loss"], 3),
                    pct(xavier[0]["test_accuracy"]),
                    pct(he[0]["test_accuracy"]),
                ]
            )
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    for init, color in (("xavier_normal", "tab:red"), ("he_normal", "tab:blue")):
        for i, row in enumerate(ctx.where(init=init)):
            records = ctx.records(row)
            axes[0].plot(
                [r["step"] for r in records],
                [r["loss"] for r in records],
                color=color,
                alpha=0.7,
                label=init if i == 0 else None,
            )
            deltas = layer_field(records[0], "delta_norm")
            axes[1].plot(
                np.arange(1, depth + 1),
                relative_to_last(deltas),
                color=color,
                alpha=0.7,
                label=init if i == 0 else None,
            )
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (batch)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("hidden layer")
    axes[1].set_ylabel(f"||delta_l|| / ||delta_{depth}|| at step 0")
    for ax in axes:
        _legend(ax)
        ax.grid(alpha=0.3)
    link = ctx.figure(fig, "training")
    return "\n".join(
        [
            f"ReLU, {depth} hidden layers of width {setting(ctx, 'width')}, {setting(ctx, 'data')}. Xavier gives "
            f"sigma_w^2 = 1, so each ReLU layer halves the signal's second moment (chi = sigma_w^2/2); He's sigma_w^2 = 2 "
            f"keeps it. Same seed, same random draws: the hidden weights differ by exactly sqrt(2), so theory predicts "
            f"r_He / r_Xavier = 2^((L-1)/2) = {gap_theory:.4g}.",
            "",
            table(
                [
                    "seed",
                    "r Xavier",
                    "r He",
                    "gap r_He/r_Xavier",
                    "gap / 2^((L-1)/2)",
                    "final loss Xavier",
                    "final loss He",
                    "test acc Xavier",
                    "test acc He",
                ],
                body,
            ),
            "",
            f"Measured gap over seeds: {', '.join(fmt(g, 4) for g in gaps)} (theory {gap_theory:.4g}; measured/theory "
            f"{fmt(min(gaps or [math.nan]) / gap_theory, 3)} to {fmt(max(gaps or [math.nan]) / gap_theory, 3)}). "
            "The hidden weights and every ReLU mask are the same in both nets up to the factor sqrt(2) per layer, so the "
            "product of the layer Jacobians differs by exactly 2^((L-1)/2); what differs is the gradient entering at the "
            "top, softmax(logits) - y, because the two nets' logits differ in scale. r follows that entering direction "
            "through the Jacobian product, so the gap is exact only up to how differently the two directions are scaled.",
            "",
            link,
        ]
    )


def dying_relu(ctx: Context) -> str:
    """Finding 4: the fraction of dead units over training for ReLU, Leaky ReLU and ELU by learning rate."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for lr in ctx.sweep.grid["lr"]:
            group = ctx.where(act=act, lr=lr)
            start = median(_mean(layer_field(ctx.records(r)[0], "dead_fraction")) for r in group)
            end = median(_mean(layer_field(_last_measured(ctx.records(r)), "dead_fraction")) for r in group)
            statuses = sorted({r["status"] for r in group})
            body.append(
                [act, lr, pct(start), pct(end), pct(median(r["test_accuracy"] for r in group)), ", ".join(statuses)]
            )
    lrs = ctx.sweep.grid["lr"]
    fig, axes = _subplots(1, len(lrs), figsize=(4 * len(lrs), 3.6), sharey=True)
    for ax, lr in zip(np.atleast_1d(axes), lrs):
        for act in ctx.sweep.grid["act"]:
            row = ctx.where(act=act, lr=lr, seed=ctx.sweep.grid["seed"][0])
            if row:
                records = ctx.records(row[0])
                ax.plot(
                    [r["step"] for r in records],
                    [_mean(layer_field(r, "dead_fraction")) for r in records],
                    label=act,
                )
        ax.set_title(f"lr = {lr}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("dead fraction (mean over hidden layers)")
    _legend(np.atleast_1d(axes)[0])
    link = ctx.figure(fig, "dead_fraction")
    final_dead = {}
    for act in ctx.sweep.grid["act"]:
        for lr in ctx.sweep.grid["lr"]:
            group = [r for r in ctx.where(act=act, lr=lr) if r["status"] == "completed"]
            if group:
                final_dead[act, lr] = median(_mean(layer_field(ctx.records(r)[-1], "dead_fraction")) for r in group)
    relu_worst = max(((v, lr) for (a, lr), v in final_dead.items() if a == "relu"), default=(math.nan, None))
    others = {
        a: max((v for (b, _), v in final_dead.items() if b == a), default=math.nan)
        for a in ctx.sweep.grid["act"]
        if a != "relu"
    }
    diverged = sorted({f"{r['act']} at lr {r['lr']}" for r in ctx.rows if r["status"] == "diverged"})
    measured = (
        f"**Measured.** ReLU ends with up to {pct(relu_worst[0])} dead units (lr {relu_worst[1]}); in completed runs "
        + ", ".join(f"{a} ends with at most {pct(v)}" for a, v in others.items())
        + (f". Runs that diverged instead of dying: {', '.join(diverged)}." if diverged else ".")
    )
    return "\n".join(
        [
            "Dead unit: exactly zero gradient (phi'(z) = 0) for every example of the batch; the fraction is "
            f"averaged over the {setting(ctx, 'depth')} hidden layers (median over seeds). SGD with momentum 0.9.",
            "",
            table(["activation", "lr", "dead at step 0", "dead at end", "test accuracy", "status"], body),
            "",
            measured,
            "",
            link,
        ]
    )


def exploding(ctx: Context) -> str:
    """Finding 5: r at init against theory for large gains, and what clipping changes."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for init in ctx.sweep.grid["init"]:
            for clip in ctx.sweep.grid["clip"]:
                row = ctx.where(act=act, init=init, clip=clip)
                if not row:
                    continue
                r = row[0]
                body.append(
                    [
                        act,
                        init.replace("xavier_normal", "Xavier").replace(":gain=", " gain "),
                        "off" if not clip else clip,
                        fmt(r["ratio_init"]),
                        fmt(r["predicted_ratio"]),
                        r["verdict"],
                        r["status"],
                        fmt(r["final_loss"], 3),
                        pct(r["test_accuracy"]),
                    ]
                )
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    for ax, act in zip(axes, ctx.sweep.grid["act"]):
        for init in ctx.sweep.grid["init"]:
            for clip, style in zip(ctx.sweep.grid["clip"], ("-", ":")):
                row = ctx.where(act=act, init=init, clip=clip)
                if row:
                    records = ctx.records(row[0])
                    ax.plot(
                        [r["step"] for r in records],
                        [_num(r["loss"]) for r in records],
                        style,
                        label=f"{init.split(':')[-1]}, clip {clip or 'off'}",
                    )
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (batch)")
        _legend(ax, fontsize=7)
        ax.grid(alpha=0.3)
    link = ctx.figure(fig, "loss")
    rescued = []
    for r in ctx.rows:
        if r["clip"] == 0 and r["status"] == "diverged":
            clipped = [c for c in ctx.where(act=r["act"], init=r["init"]) if c["clip"] != 0]
            rescued += [
                f"{r['act']} {r['init']}: diverged without clipping, {c['status']} with it "
                f"({pct(c['test_accuracy'])} test accuracy)"
                for c in clipped
            ]
    errors = [log_error(r["ratio_init"], r["predicted_ratio"]) for r in ctx.rows if r["clip"] == 0]
    measured = f"**Measured.** Theory vs measurement of r at init: {agreement(errors)}. " + (
        "; ".join(rescued) + "." if rescued else "No run diverged without clipping."
    )
    return "\n".join(
        [
            f"Depth {setting(ctx, 'depth')}, width {setting(ctx, 'width')}: Xavier-normal weights scaled by a gain g (sigma_w^2 = g^2 on "
            "the square hidden layers). For ReLU, chi = g^2/2, so g = 2 gives x1.41 per layer; tanh with g >= 2 is in "
            "the chaotic phase. Clip = global gradient-norm clipping at 1.0.",
            "",
            table(
                [
                    "activation",
                    "init",
                    "clip",
                    "r at init",
                    "theory r",
                    "verdict",
                    "status",
                    "final loss",
                    "test accuracy",
                ],
                body,
            ),
            "",
            measured,
            "",
            link,
        ]
    )


def rescue(ctx: Context) -> str:
    """Finding 6: r and accuracy of deep sigmoid/tanh nets with residual connections and normalization."""
    body = []
    for act in ctx.sweep.grid["act"]:
        for residual in ctx.sweep.grid["residual"]:
            for norm in ctx.sweep.grid["norm"]:
                row = ctx.where(act=act, residual=residual, norm=norm)
                if row:
                    r = row[0]
                    variant = (
                        " + ".join(
                            filter(None, ["residual" if residual else "", f"{norm} norm" if norm != "none" else ""])
                        )
                        or "plain"
                    )
                    body.append(
                        [
                            act,
                            variant,
                            fmt(r["ratio_init"]),
                            r["verdict"],
                            fmt(r["ratio_final"]),
                            r["verdict_final"],
                            pct(r["test_accuracy"]),
                        ]
                    )
    fig, axes = _subplots(1, len(ctx.sweep.grid["act"]), figsize=(11, 4), sharey=True)
    for ax, act in zip(np.atleast_1d(axes), ctx.sweep.grid["act"]):
        for residual in ctx.sweep.grid["residual"]:
            for norm in ctx.sweep.grid["norm"]:
                row = ctx.where(act=act, residual=residual, norm=norm)
                if row:
                    deltas = layer_field(ctx.records(row[0])[0], "delta_norm")
                    ax.plot(
                        np.arange(1, len(deltas) + 1),
                        relative_to_last(deltas),
                        label=("residual" if residual else "plain") + (f", {norm}" if norm != "none" else ""),
                    )
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel(f"||delta_l|| / ||delta_{setting(ctx, 'depth')}|| at step 0")
    link = ctx.figure(fig, "profiles")
    by_verdict = {}
    for row in body:
        by_verdict.setdefault(row[3], []).append(f"{row[0]} {row[1]}")
    best = max(ctx.rows, key=lambda r: _num(r["test_accuracy"]))
    measured = (
        "**Measured.** At initialization, "
        + "; ".join(f"{verdict}: {', '.join(names)}" for verdict, names in sorted(by_verdict.items()))
        + f". Best test accuracy: {pct(best['test_accuracy'])} ({best['act']}, residual={best['residual']}, "
        f"norm={best['norm']})."
    )
    return "\n".join(
        [
            f"Depth {setting(ctx, 'depth')}, width {setting(ctx, 'width')}, init auto (Xavier), {ctx.sweep.fixed.get('steps')} steps of "
            "SGD with momentum. Normalization sits between each Linear and its activation; the residual connection adds "
            "the block's input to its output.",
            "",
            table(
                ["activation", "architecture", "r at init", "verdict", "r at end", "verdict at end", "test accuracy"],
                body,
            ),
            "",
            measured,
            "",
            link,
        ]
    )


def selu(ctx: Context) -> str:
    """Finding 7: per-layer activation mean and std at init for SELU/LeCun and its contrasts."""
    depth = setting(ctx, "depth")
    shown = sorted({i for i in (1, depth // 4, depth // 2, 3 * depth // 4, depth) if i >= 1})
    body = []
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    for row in ctx.rows:
        first = ctx.records(row)[0]
        means, stds = layer_field(first, "act_mean"), layer_field(first, "act_std")
        body.append([row["act"], row["init"]] + [f"{means[i - 1]:+.2f} / {stds[i - 1]:.2f}" for i in shown])
        layers = np.arange(1, len(means) + 1)
        axes[0].plot(layers, means, label=f"{row['act']}, {row['init']}")
        axes[1].plot(layers, stds, label=f"{row['act']}, {row['init']}")
    selu_lecun = ctx.where(act="selu", init="lecun_normal")
    theory_line = ""
    if selu_lecun:
        fixed = theory.fixed_point(activations.get("selu"), 1.0)
        mean = theory.mean_activation(activations.get("selu"), fixed.q_star)
        theory_line = (
            f"Theory (sigma_w^2 = 1, LeCun): the pre-activation variance has the fixed point q* = "
            f"{fixed.q_star:.4f}, where the SELU output has mean {mean:+.1e}."
        )
    axes[0].set_ylabel("mean of activations at step 0")
    axes[1].set_ylabel("std of activations at step 0")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("hidden layer")
        ax.grid(alpha=0.3)
        _legend(ax, fontsize=7)
    link = ctx.figure(fig, "moments")
    measured = ""
    if selu_lecun:
        first = ctx.records(selu_lecun[0])[0]
        means, stds = layer_field(first, "act_mean"), layer_field(first, "act_std")
        measured = (
            f"**Measured.** SELU with LeCun init over all {len(means)} layers: |mean| <= "
            f"{np.max(np.abs(means)):.3f}, std between {np.min(stds):.3f} and {np.max(stds):.3f} "
            f"(finite width {setting(ctx, 'width')} and a batch of {setting(ctx, 'batch_size')} make each number "
            "fluctuate by a few percent)."
        )
    return "\n".join(
        [
            f"Mean / std of each hidden layer's activations (over the batch and the units) at initialization, depth "
            f"{depth}, width {setting(ctx, 'width')}, on standardized {setting(ctx, 'data')} inputs.",
            "",
            table(["activation", "init"] + [f"layer {i}: mean / std" for i in shown], body),
            "",
            theory_line,
            "",
            measured,
            "",
            link,
        ]
    )


def edge_of_chaos(ctx: Context) -> str:
    """Finding 8: tanh's per-layer factor against sqrt(chi_1), and trainability against 6 xi."""
    act = activations.get(ctx.sweep.fixed.get("act", "tanh"))
    depths = ctx.sweep.grid["depth"]
    body, errors, points = [], [], []
    for init in ctx.sweep.grid["init"]:
        gain = float(init.split("gain=")[1]) if "gain=" in init else 1.0
        sigma_w2 = gain * gain
        fixed = theory.fixed_point(act, sigma_w2)
        chi = theory.chi1(act, fixed.q_star, sigma_w2)
        xi = theory.depth_scale(chi)
        cells = [f"{sigma_w2:.2f}", fmt(chi, 3), fmt(xi, 3), fmt(6 * xi, 3)]
        for depth in depths:
            row = ctx.where(init=init, depth=depth)
            if not row:
                cells.append("-")
                continue
            r = row[0]
            measured, predicted = _num(r["per_layer_factor_init"]), _num(r["predicted_per_layer_factor"])
            errors.append(log_error(measured, predicted))
            trained = _num(r["train_accuracy"]) >= 0.2
            points.append((sigma_w2, depth, trained, measured, predicted))
            cells.append(
                f"{fmt(measured, 3)} / {fmt(predicted, 3)}, {pct(r['train_accuracy'])} "
                f"{'trains' if trained else 'stuck'}"
            )
        body.append(cells)
    consistent = [
        (d < 6 * theory.depth_scale(theory.chi1(act, theory.fixed_point(act, s).q_star, s))) == t
        for s, d, t, _, _ in points
    ]
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    grid = np.linspace(0.2, 9.5, 120)
    chis = [theory.chi1(act, theory.fixed_point(act, s).q_star, s) for s in grid]
    axes[0].plot(grid, np.sqrt(chis), color="black", label="theory sqrt(chi_1) at q*")
    for depth, marker in zip(depths, "os^v"):
        pts = [(s, m) for s, d, _, m, _ in points if d == depth]
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker, label=f"measured, depth {depth}")
    axes[0].axhline(1, color="gray", lw=0.8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("sigma_w^2")
    axes[0].set_ylabel("per-layer factor of ||delta||")
    _legend(axes[0], fontsize=7)
    xis = np.array([theory.depth_scale(c) for c in chis])
    axes[1].plot(grid, np.minimum(6 * xis, 1e3), color="black", label="6 xi")
    for trained, marker, label in ((True, "o", "trains"), (False, "x", "stuck")):
        pts = [(s, d) for s, d, t, _, _ in points if t == trained]
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], marker, label=label)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_ylim(5, 200)
    axes[1].set_xlabel("sigma_w^2")
    axes[1].set_ylabel("depth")
    _legend(axes[1], fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    link = ctx.figure(fig, "phase")
    return "\n".join(
        [
            f"{act.name}, sigma_b^2 = 0, width {setting(ctx, 'width')}, SGD with momentum for "
            f"{ctx.sweep.fixed.get('steps')} steps. chi_1 and xi = -1/ln chi_1 at the fixed point q*; each cell: measured "
            "per-layer factor r^(1/(L-1)) / theory (along the actual q trajectory), then the final train accuracy "
            "('trains' = at least 20%, twice chance).",
            "",
            table(["sigma_w^2", "chi_1", "xi", "6 xi"] + [f"depth {d}" for d in depths], body),
            "",
            f"Per-layer factor, theory vs measurement: {agreement(errors)}.",
            f"Trainability agrees with 'depth < 6 xi' in {sum(consistent)} of {len(consistent)} runs.",
            "",
            link,
        ]
    )


def orthogonal(ctx: Context) -> str:
    """Finding 9: seed-to-seed spread of the gradient profile, orthogonal vs Gaussian weights."""
    body = []
    acts, inits = ctx.sweep.grid["act"], ctx.sweep.grid["init"]
    fig, axes = _subplots(1, len(acts) * len(inits), figsize=(4 * len(acts) * len(inits), 3.5), sharey=True)
    axes = np.atleast_1d(axes)
    panel = 0
    for act in acts:
        for init in inits:
            group = ctx.where(act=act, init=init)
            ratios = [_num(r["ratio_init"]) for r in group]
            logs = np.log10([r for r in ratios if r > 0])
            profiles = np.array(
                [np.log10(relative_to_last(layer_field(ctx.records(r)[0], "delta_norm"))) for r in group]
            )
            finite = profiles[np.all(np.isfinite(profiles), axis=1)] if len(profiles) else profiles
            spread = float(np.mean(np.std(finite, axis=0))) if len(finite) else math.nan
            body.append(
                [
                    act,
                    init,
                    fmt(geometric_median(ratios), 3),
                    fmt(min(ratios, default=math.nan), 3),
                    fmt(max(ratios, default=math.nan), 3),
                    f"{np.std(logs):.3f}" if len(logs) else "-",
                    f"{spread:.3f}",
                ]
            )
            for p in profiles:
                axes[panel].plot(np.arange(1, len(p) + 1), 10**p, lw=1)
            axes[panel].set_title(f"{act}, {init}", fontsize=9)
            axes[panel].set_yscale("log")
            axes[panel].set_xlabel("hidden layer")
            axes[panel].grid(alpha=0.3)
            panel += 1
    axes[0].set_ylabel("||delta_l|| / ||delta_L|| at step 0")
    link = ctx.figure(fig, "profiles")
    spreads = {(row[0], row[1]): float(row[5]) for row in body if row[5] != "-"}
    lines = []
    for act in acts:
        o, g = spreads.get((act, "orthogonal")), spreads.get((act, "xavier_normal"))
        if o is not None and g is not None:
            lines.append(f"{act}: spread of log10 r {o:.3f} (orthogonal) vs {g:.3f} (Gaussian)")
    measured = "**Measured.** " + "; ".join(lines) + "."
    return "\n".join(
        [
            f"Depth {setting(ctx, 'depth')}, width {setting(ctx, 'width')}, at initialization, {len(ctx.sweep.grid['seed'])} seeds per "
            "row. Spread = standard deviation over seeds of log10 r, and of log10(delta_l/delta_L) averaged over layers.",
            "",
            table(["activation", "init", "r (median)", "r min", "r max", "spread of log10 r", "profile spread"], body),
            "",
            measured,
            "",
            link,
        ]
    )


FINDINGS = [
    Finding(
        "vanishing_depth",
        "Vanishing through depth",
        "Sigmoid gradients vanish exponentially with depth (sigmoid' <= 1/4); tanh loses less; the ReLU family "
        "with He init keeps r near 1 at any depth.",
        "Hochreiter 1991; Bengio et al. 1994; Glorot & Bengio 2010; mean field: Poole et al. 2016.",
        vanishing_depth,
    ),
    Finding(
        "glorot_bengio",
        "Glorot & Bengio (2010): standard vs normalized initialization",
        "With the standard init, back-propagated gradients shrink toward the input and sigmoid nets train worst; "
        "the normalized (Xavier) init keeps gradients of similar size in every layer and helps tanh most.",
        "Glorot & Bengio, Understanding the difficulty of training deep feedforward neural networks, AISTATS 2010.",
        glorot_bengio,
    ),
    Finding(
        "he_2015",
        "He et al. (2015): a 30-layer ReLU net, Xavier vs He",
        "A 30-layer ReLU net with Xavier init stalls while He init converges; at init the two differ by exactly "
        "2^((L-1)/2) in the first/last gradient ratio.",
        "He, Zhang, Ren & Sun, Delving deep into rectifiers, ICCV 2015 (Fig. 3).",
        he_2015,
    ),
    Finding(
        "dying_relu",
        "Dying ReLU",
        "A large learning rate pushes ReLU units to negative pre-activations for every input; their gradient is "
        "zero and they never recover. Leaky ReLU and ELU have a non-zero slope there and stay alive.",
        "Maas et al. 2013 (leaky ReLU); Clevert et al. 2016 (ELU); Lu et al. 2019 (dying ReLU).",
        dying_relu,
    ),
    Finding(
        "exploding",
        "Exploding gradients and clipping",
        "Weights that are too large (chi > 1) make gradients grow exponentially toward the input; global-norm "
        "clipping bounds each update and keeps training finite.",
        "Pascanu, Mikolov & Bengio, On the difficulty of training recurrent neural networks, ICML 2013.",
        exploding,
    ),
    Finding(
        "rescue",
        "Rescue by architecture: residual connections and normalization",
        "A depth-50 sigmoid/tanh MLP vanishes; identity skips give the gradient a short path and normalization "
        "re-centres every layer, restoring flow.",
        "He et al., Deep residual learning, CVPR 2016; Ioffe & Szegedy 2015 (batch norm); Ba et al. 2016 (layer norm).",
        rescue,
    ),
    Finding(
        "selu",
        "SELU self-normalization",
        "With LeCun-normal weights, SELU activations keep mean ~0 and variance ~1 through 30+ layers.",
        "Klambauer et al., Self-normalizing neural networks, NeurIPS 2017.",
        selu,
    ),
    Finding(
        "edge_of_chaos",
        "The edge of chaos",
        "For tanh, the per-layer gradient factor is sqrt(chi_1); chi_1 < 1 is ordered (vanishing), chi_1 > 1 chaotic "
        "(exploding); a net trains only if it is shallower than about 6 xi, xi = -1/ln chi_1.",
        "Poole et al. 2016; Schoenholz et al., Deep information propagation, ICLR 2017.",
        edge_of_chaos,
    ),
    Finding(
        "orthogonal",
        "Orthogonal vs Gaussian initialization",
        "Orthogonal weights preserve the norm of every back-propagated vector exactly in a linear net (dynamical "
        "isometry): the gradient profile is the same for every seed; Gaussian weights of the same variance "
        "give a profile that wanders from seed to seed.",
        "Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017.",
        orthogonal,
    ),
]


def generate(names=None, runs_root="runs/report", out_dir="experiments", jobs: int = 2, progress=True) -> Path:
    """Run (or resume) every finding's sweep and write ``out_dir/README.md`` with tables and figures."""
    chosen = [f for f in FINDINGS if not names or f.name in names]
    unknown = sorted(set(names or ()) - {f.name for f in FINDINGS})
    if unknown:
        raise UsageError(f"unknown finding {unknown[0]!r}; choose from: {', '.join(f.name for f in FINDINGS)}")
    out = Path(out_dir)
    sections = {}
    for finding in chosen:
        sweep = sweeps.load_config(finding.name)
        root = Path(runs_root) / finding.name
        rows = sweeps.run_sweep(sweep, root, jobs=jobs, progress=progress)
        ctx = Context(finding.name, sweep, rows, root, out / "figures")
        with np.errstate(all="ignore"):  # diverged or vanished runs: inf and nan are the honest numbers here
            sections[finding.name] = (finding, finding.analyze(ctx))
    path = out / "README.md"
    existing = _existing_sections(path)
    lines = [_HEADER]
    for number, finding in enumerate(FINDINGS, 1):
        if finding.name in sections:
            body = _section(number, finding, sections[finding.name][1])
        else:
            body = existing.get(
                finding.name,
                f"## {number}. {finding.title}\n\n(not generated yet: `make report ONLY={finding.name}`)\n",
            )
        lines.append(f"<!-- finding:{finding.name} -->\n{body.rstrip()}\n<!-- /finding:{finding.name} -->")
    rundir.atomic_write(path, "\n\n".join(lines) + "\n")
    return path


def _section(number: int, finding: Finding, body: str) -> str:
    return "\n".join(
        [
            f"## {number}. {finding.title}",
            "",
            f"**Claim.** {finding.claim}",
            "",
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


_HEADER = """# Findings: the classic results, reproduced

Every table and figure below is regenerated from fresh runs by `make report` (resumable: a killed report
picks up where it stopped; `make report ONLY=name` redoes one finding). Runs live in `runs/report/<finding>/`.
Unless a finding says otherwise: MNIST-1D (4000 train / 1000 test, 40 features, 10 classes), width 64,
batch 64, SGD with momentum 0.9, lr 0.02, float64, biases zero, seed 0. **r** is the ratio of the
back-propagated gradient norm ||dL/dz|| at the first hidden layer to that at the last hidden layer, at
step 0 (initialization) unless marked *end*; verdict: vanishing if r < 1e-2, exploding if r > 1e2 or
non-finite, else healthy. *Theory* is the mean-field prediction of `tinygrad_act/lab/theory.py` (Poole et al.
2016; Schoenholz et al. 2017) from each run's own weight variances, with sigma_b^2 = 0."""
