"""Finding 10's training race (isometry.py runs the finding), and the margins its check prints.

The nets at their critical points race, per depth and seed, each at its best learning rate, to a *level* of the
smoothed minibatch loss that every one of them that trained reaches; orthogonal tanh is the reference. Its
margins are findings/common.py's (seed_margin, judged), as every finding's.
"""

from __future__ import annotations

import math

import numpy as np

from ..lab.show import plots
from ..lab.show.format import fmt, markdown_table, number
from .common import Context, Part, judged, seed_margin

SPEEDUP_ORDERS = 10.0  # "orders of magnitude faster" (the paper's abstract): at least this factor
SMOOTHING = 5  # logged minibatch losses averaged (50 steps at log_every 10, odd: centred), so no lucky batch decides
# Trained: the final loss on the whole training split is at most this fraction of the chance-level loss ln(classes)
# (ln 10 = 2.303 -> 2.07): 0.23 below chance, where the smoothed minibatch loss of an untrained net (sd ~0.05) is not.
TRAINED_BELOW = 0.9


def smoothed_losses(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, the minibatch loss averaged over SMOOTHING logged records centred on each step): no lag, so the
    step at which a fast net crosses a level is not pushed back by the window."""
    steps = np.array([r["step"] for r in records])
    losses = np.array([r["loss"] for r in records], dtype=float)
    half = (min(SMOOTHING, len(records)) - 1) // 2  # a short run: the widest odd window it has
    window = 2 * half + 1
    return steps[half : len(steps) - half], np.convolve(losses, np.ones(window) / window, mode="valid")


def steps_to(steps, losses, target: float) -> float:
    """The first step at which the smoothed minibatch loss is at most ``target`` (inf if never)."""
    reached = np.flatnonzero(np.asarray(losses, dtype=float) <= target)
    return float(steps[reached[0]]) if reached.size else math.inf


def key_of(row: dict) -> tuple:
    return (row["act"], row["kind"], round(row["sigma_w2"], 6))


def label(config: dict) -> str:
    return f"{config['act']}, {config['kind']}, σ_w² {fmt(config['sigma_w2'], 4)}"


def among(rows, seeds, **match) -> list[dict]:
    """The rows matching ``match`` (``key`` for the config) of ``seeds`` (None: all)."""
    return [r for r in rows if (seeds is None or r["seed"] in seeds) and all(
        (key_of(r) if k == "key" else r[k]) == v for k, v in match.items())]  # fmt: skip


def median_of(rows, field) -> float:
    values = [number(r.get(field)) for r in rows]
    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def spread_text(rows, field, digits=3) -> str:
    """The median over seeds, with the range when there are several: ``1.1 (1.08..1.12)``."""
    values = sorted(v for v in (number(r.get(field)) for r in rows) if not math.isnan(v))
    if len(values) < 2:
        return fmt(values[0] if values else math.nan, digits)
    return f"{fmt(float(np.median(values)), digits)} ({fmt(values[0], digits)}..{fmt(values[-1], digits)})"


def keys_of(cfgs, act, kind=None, critical=None) -> list[tuple]:
    return [
        c["key"] for c in cfgs if c["act"] == act and kind in (None, c["kind"]) and critical in (None, c["critical"])
    ]


def trained(row: dict, chance_loss: float) -> bool:
    """Completed with a final loss on the whole training split at most TRAINED_BELOW x the chance-level loss."""
    return row["status"] == "completed" and number(row.get("train_loss")) <= TRAINED_BELOW * chance_loss


def best_lr(rows: list[dict], key: tuple, depth: int):
    """The learning rate whose runs end with the lowest median training loss over the seeds (diverged: inf)."""
    by_lr = {}
    for r in among(rows, None, key=key, depth=depth):
        loss = number(r.get("train_loss")) if r["status"] == "completed" else math.inf
        by_lr.setdefault(r["lr"], []).append(math.inf if math.isnan(loss) else loss)
    return min(by_lr, key=lambda lr: (float(np.median(by_lr[lr])), lr)) if by_lr else None


def pair(reference: dict, other: dict, chance_loss: float) -> tuple[float, str, float]:
    """The race of two runs: (log10 of (other's steps + 1) / (reference's steps + 1) to the level; "≥" where the
    other never reached it and counts all its steps, or the reference was there at its first smoothed step, "≤"
    where the reference never reached it, else ""; the level). The
    level is the higher of the final smoothed losses of those of the two that trained, and at least the bar
    (TRAINED_BELOW x chance) if one did not: every net that trained reaches it. nan if neither trained."""
    finished = [r["losses"][-1] for r in (reference, other) if trained(r, chance_loss)]
    if not finished:
        return math.nan, "", math.nan
    level = max(finished + ([TRAINED_BELOW * chance_loss] if len(finished) < 2 else []))
    mine, theirs = (steps_to(r["steps"], r["losses"], level) for r in (reference, other))
    first = mine == reference["steps"][0]  # at the first smoothed step: it may have got there sooner
    mark = "≥" if math.isinf(theirs) or first else "≤" if math.isinf(mine) else ""
    mine, theirs = (r["steps_done"] if math.isinf(t) else t for r, t in ((reference, mine), (other, theirs)))
    return math.log10((theirs + 1) / (mine + 1)), mark, level


class Races:
    """The critical nets per (depth, seed), each at its best learning rate, raced against orthogonal tanh."""

    def __init__(self, rows: list[dict], cfgs: list[dict], chance_loss: float):
        self.critical, self.chance_loss = [c for c in cfgs if c["critical"]], chance_loss
        self.reference = next((c["key"] for c in self.critical if c["act"] == "tanh" and c["kind"] == "orthogonal"),
                              None)  # fmt: skip
        self.depths = sorted({r["depth"] for r in rows})
        self.seeds = sorted({r["seed"] for r in rows})
        self.runs = {}  # (key, depth, seed) -> the run at the key's best lr at that depth
        for c in self.critical:
            for depth in self.depths:
                for r in among(rows, None, key=c["key"], depth=depth, lr=best_lr(rows, c["key"], depth)):
                    if r["losses"]:
                        self.runs[(c["key"], depth, r["seed"])] = r

    def speedups(self, other: tuple, depth: int, seeds=None) -> list[tuple[float, str, float]]:
        """Per seed (of ``seeds``, None: all) that has both runs: ``pair``'s result; seeds neither trained in left out."""
        found = []
        for seed in self.seeds if seeds is None else seeds:
            mine, theirs = self.runs.get((self.reference, depth, seed)), self.runs.get((other, depth, seed))
            if mine and theirs:
                found.append(pair(mine, theirs, self.chance_loss))
        return [f for f in found if not math.isnan(f[0])]

    def margin(self, others: list[tuple], factor: float, seeds=None) -> float:
        """min over depths and ``others`` of log10(median speed-up over ``seeds``) - log10(factor)."""
        medians = []
        for other in others:
            for depth in self.depths:
                found = self.speedups(other, depth, seeds)
                medians.append(float(np.median([f[0] for f in found])) if found else math.nan)
        return min(medians) - math.log10(factor) if medians and not any(map(math.isnan, medians)) else math.nan

    def text(self, others: list[tuple], cfgs: list[dict]) -> str:
        names = {c["key"]: f"{c['act']} {c['kind']}" for c in cfgs}
        parts = []
        for other in others:
            for depth in self.depths:
                found = self.speedups(other, depth)
                if not found:
                    parts.append(f"{names[other]} at depth {depth}: not compared (neither trained)")
                    continue
                seeds = ", ".join(f"{mark}×{fmt(10**log, 3)} to {fmt(level, 3)}" for log, mark, level in found)
                median = fmt(10 ** float(np.median([f[0] for f in found])), 3)
                parts.append(f"{names[other]} at depth {depth}: median ×{median} (seeds: {seeds})")
        return "speed-up over " + "; ".join(parts)


def training_table(rows: list[dict], cfgs: list[dict], races: Races, chance_loss: float) -> str:
    """Per (config, depth): the best lr, the final losses and accuracies over seeds, how many seeds trained, and the
    step at which each seed's smoothed loss first reached the bar."""
    out, bar = [], TRAINED_BELOW * chance_loss
    for c in cfgs:
        for depth in races.depths:
            lr = best_lr(rows, c["key"], depth)
            found = among(rows, None, key=c["key"], depth=depth, lr=lr)
            if not found:
                continue
            done = sum(trained(r, chance_loss) for r in found)
            steps = [steps_to(r["steps"], r["losses"], bar) for r in found]
            out.append([label(c), depth, f"{lr:g}", spread_text(found, "train_loss"),
                        spread_text(found, "test_accuracy"), f"{done} of {len(found)}" + ("" if done else
                        ": did not train"), ", ".join("never" if math.isinf(t) else str(int(t)) for t in steps)])  # fmt: skip
    head = ["net (σ_w²)", "depth", "best lr", "train loss (end)", "test acc (end)", "trained",
            f"steps to {fmt(bar, 3)} (per seed)"]  # fmt: skip
    return markdown_table(head, out)


def training_figure(ctx: Context, rows: list[dict], races: Races) -> str:
    """One panel per depth: each critical net's smoothed minibatch loss at its best lr (median over seeds, the
    seeds' range shaded) and the bar of a trained net (dotted)."""
    fig, axes = plots.figure(1, len(races.depths), figsize=(5.5 * len(races.depths), 3.6), squeeze=False)
    names = [label(c) for c in races.critical]
    for ax, depth in zip(axes[0], races.depths):
        for c in races.critical:
            found = [r for (key, d, _), r in races.runs.items() if key == c["key"] and d == depth]
            curves = [r["losses"] for r in found]
            if not curves:
                continue
            size = min(map(len, curves))
            curves, colour = np.array([v[:size] for v in curves]), plots.activation_color(label(c), names)
            steps = found[0]["steps"][:size]
            ax.plot(steps, np.median(curves, axis=0), color=colour, label=f"{label(c)}, lr {found[0]['lr']:g}")
            ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.2)
        ax.axhline(TRAINED_BELOW * races.chance_loss, color="0.4", ls=":", lw=0.8, label="the bar of trained")
        ax.set_title(f"depth {depth}", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="lower left")
    axes[0][0].set_ylabel(f"minibatch loss (mean of {SMOOTHING} logged, centred)")
    return ctx.figure(fig, "training")


def training_text(ctx: Context, rows: list[dict], races: Races, chance_loss: float) -> str:
    """How the committed training table was made and how the race is run."""
    committed, lrs = ctx.committed, ", ".join(f"{v:g}" for v in sorted({r["lr"] for r in rows}))
    fixed = committed.get("fixed", {})
    return (
        f"**Training: the table below is committed**, not rerun by `make report`: the full grid ({len(rows)} runs, "
        f"{committed['sweep']}.toml: the same nets at learning rates {lrs}, "
        f"seeds {', '.join(map(str, races.seeds))}, {fixed.get('steps')} steps of SGD with momentum "
        f"{fixed.get('momentum', ctx.setting('momentum'))}, batch {fixed.get('batch_size', ctx.setting('batch_size'))}) "
        f"exceeds the report's budget; `{committed['made_by']}` reruns it and rewrites "
        f"{committed['sweep']}.json. Each net runs at its best learning rate (the lowest median final loss on the "
        f"whole training split over the seeds). A net *trained* if that loss ended at most {TRAINED_BELOW:g} × the "
        f"chance-level loss ln {round(math.exp(chance_loss))} = {fmt(TRAINED_BELOW * chance_loss, 3)} (the *bar*). "
        f"Orthogonal tanh races each other critical net, per depth and seed, to a *level* both reach: the higher of "
        f"their final minibatch losses (mean of {SMOOTHING} logged, centred) if both trained, else the higher of the bar and the "
        f"final loss of the one that trained; a net that never reaches it counts all its steps (≥: a lower bound on the speed-up, "
        f"as where orthogonal tanh is there at the first centred step, {SMOOTHING // 2} records in; ≤ where it never "
        f"gets there). Speed-up = (steps + 1) of the other net over those of "
        f"orthogonal tanh. The paper's nets were far wider and deeper (CIFAR-10; its exact width, depth and "
        f"schedule were not verified for this report), so only the direction and rough size compare."
    )


def speed_parts(races: Races, cfgs: list[dict]) -> list[Part]:
    """Orthogonal tanh reaches the level sooner than Gaussian tanh and than ReLU, and by orders of magnitude?"""
    gaussian, relu = keys_of(cfgs, "tanh", "Gaussian", True), keys_of(cfgs, "relu", critical=True)
    if races.reference is None or not gaussian + relu:
        return [Part("isometry trains faster", False, "no critical orthogonal tanh net, or nothing to race it")]

    def part(says, others, factor):
        margin = seed_margin(lambda seeds: races.margin(others, factor, seeds), races.seeds, "decades")
        return judged(says, margin, races.text(others, cfgs))

    return [
        part("isometry trains faster: orthogonal tanh reaches the level sooner than Gaussian tanh, at every depth",
             gaussian, 1.0),
        part("and sooner than ReLU at its critical point (the paper: sigmoidal nets outperform ReLU nets)", relu, 1.0),
        part(f"by orders of magnitude (at least ×{SPEEDUP_ORDERS:g}, the paper's abstract) over each of them",
             gaussian + relu, SPEEDUP_ORDERS),
    ]  # fmt: skip
