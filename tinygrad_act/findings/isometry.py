"""Finding 10: dynamical isometry -- the whole Jacobian spectrum at step 0, and whether isometry trains faster.

Pennington, Schoenholz & Ganguli 2017: at criticality (chi = 1) with a small fixed point q*, orthogonal tanh
networks keep every singular value of the input-output Jacobian near the same size, Gaussian weights spread them
(the variance of s^2 grows by one per layer), and ReLU cannot be isometric: its D^2 has entries 0 and 1 with
equal probability whatever the init, so half the singular values are 0 and the variance of s^2 grows by at least
one per layer. Each activation runs at its own critical point (tanh: sigma_w^2 = 1.086 at sigma_b^2 = 1e-4; ReLU:
sigma_w^2 = 2, He's gain) and at the other's. The report's own runs measure the spectra (lab/measure/jacobian.py:
exact over any range, exact zeros counted); the training comparison needs three learning rates, three seeds and
500 steps at depth 128, too heavy for the report: `make report ONLY=isometry FULL=1` runs it and commits one row
per run to experiments/isometry_full.json (``export``), which the report reads back and judges.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import files
from ..lab import data
from ..lab.show import plots
from ..lab.show.format import fmt, fmt_log10, markdown_table, number
from ..lab.theory import mean_field as theory
from ..lab.theory import spectrum, spectrum_density
from .common import Check, Context, Finding, Part, judged, log_error, paragraphs, seed_margin
from .isometry_training import (
    SPEEDUP_ORDERS,
    Races,
    among,
    key_of,
    keys_of,
    label,
    median_of,
    smoothed_losses,
    speed_parts,
    spread_text,
    training_figure,
    training_table,
    training_text,
)

NARROW_DECADES = 2.0  # a "narrow band": the middle 90% of the singular values within a factor of 100
WIDE_DECADES = 4.0  # "many decades": the middle 90% spread over more than a factor of 10^4
THEORY_FACTOR = 2.0  # measured and free-probability variance of s^2 agree within this factor
SETTLED_WITHIN = 0.1  # the mean-field q has settled where it is within 10% of its fixed point q*
FULL_TABLE = "isometry_full"  # the full grid's sweep, and its committed table experiments/<this>.json
SAME_WITHIN = 1e-6  # a rerun reproduces a committed spectrum when every number agrees to this relative difference


def relative_variance(entry: dict) -> float:
    """Var(s^2) / mean(s^2)^2 over all width x examples singular values, exact zeros (and unresolved values, all
    tiny) as 0: the quantity free probability predicts, zeros included. Scaled by the largest, so 1e-300 or 1e300
    neither under- nor overflows."""
    logs = np.asarray(entry.get("log10_singular_values") or [], dtype=float)
    if not (logs.size and np.isfinite(logs[0])):
        return math.nan
    s2 = np.zeros(entry["width"] * entry["examples"])
    s2[: logs.size] = np.power(10.0, 2.0 * (logs - logs[0]))
    return float(np.var(s2) / np.mean(s2) ** 2)


def run_row(ctx: Context, row: dict) -> dict:
    """What the finding reads of one run: its settings, its step-0 spectrum and its smoothed loss curve."""
    summary = files.read_json(ctx.root / "runs" / row["run"] / "summary.json") or {}
    entry, width = summary.get("jacobian") or {}, ctx.setting("width")
    out = {"act": row["act"], "init": row["init"], "kind": "orthogonal" if row["init"].startswith("orthogonal") else
           "Gaussian", "sigma_w2": theory.sigma_w2_of_init(row["init"], row["act"], width, width),
           "depth": row["depth"], "seed": row.get("seed", ctx.setting("seed")), "lr": row.get("lr", ctx.setting("lr")),
           "status": summary.get("status"), "train_loss": summary.get("train_loss"),
           "test_accuracy": summary.get("test_accuracy"), "steps_done": summary.get("steps_done")}  # fmt: skip
    if entry.get("applies"):
        model = entry.get("theory") or {}
        out.update(rank=entry["rank"], zeros=entry["zeros"], unresolved=entry["unresolved"], width=entry["width"],
                   decades=entry["decades"], median=entry["median"], log10_mean_s2=entry["log10_mean_s2"],
                   relative_var=relative_variance(entry), theory_mean_s2=model.get("mean_s2"),
                   theory_relative_var=model.get("relative_var"))  # fmt: skip
    steps, losses = smoothed_losses(ctx.records(row)) if summary else ([], [])
    out.update(steps=[int(s) for s in steps], losses=[round(float(v), 6) for v in losses])
    return out


def export(ctx: Context) -> list[dict]:
    """One row per run of the full grid: the table committed to experiments/isometry_full.json (Finding.export)."""
    return [run_row(ctx, row) for row in ctx.rows]


def _sigma_b2(ctx: Context) -> float:
    return (ctx.committed or {}).get("fixed", {}).get("sigma_b2", ctx.setting("sigma_b2"))


def chi_star(act: str, sigma_w2: float, sigma_b2: float) -> float:
    """chi1 at the fixed point q* (ReLU: sigma_w2 / 2 at any q, also where q grows without bound)."""
    fixed = theory.fixed_point(act, sigma_w2, sigma_b2)
    return theory.chi1(act, min(fixed.q_star, theory.Q_INFINITY), sigma_w2)


def configs(rows: list[dict], sigma_b2: float) -> list[dict]:
    """The (act, weights, sigma_w2) of the rows in grid order, each with chi* and whether it is critical."""
    out = {}
    for r in rows:
        key = (r["act"], r["kind"], round(r["sigma_w2"], 6))
        if key not in out:
            chi = chi_star(r["act"], r["sigma_w2"], sigma_b2)
            out[key] = {"act": r["act"], "kind": r["kind"], "sigma_w2": r["sigma_w2"], "chi": chi,
                        "critical": theory.phase(chi) == "critical", "key": key}  # fmt: skip
    return list(out.values())


def spectra(rows: list[dict]) -> list[dict]:
    """One row per run with a measured spectrum and per (config, depth, seed) (the spectrum is the same at
    every learning rate: it is measured at step 0)."""
    seen, out = set(), []
    for r in rows:
        if "decades" in r and (key_of(r), r["depth"], r["seed"]) not in seen:
            seen.add((key_of(r), r["depth"], r["seed"]))
            out.append(r)
    return out


def spectra_table(srows: list[dict], cfgs: list[dict]) -> str:
    """Per (config, depth), over seeds: rank and exact zeros, the band of the nonzero values, mean s^2 and the
    variance of s^2 (zeros included) beside free probability's."""
    out = []
    for c in cfgs:
        for depth in sorted({r["depth"] for r in srows}):
            rows = among(srows, None, key=c["key"], depth=depth)
            if not rows:
                continue
            ranks = [k for r in rows for k in r["rank"]]
            zeros = [sum(r["zeros"]) / (r["width"] * len(r["zeros"])) for r in rows]
            out.append([c["act"], c["kind"], f"{fmt(c['sigma_w2'], 4)} ({fmt(c['chi'], 3)})", depth,
                        f"{min(ranks)}..{max(ranks)}", f"{100 * float(np.median(zeros)):.0f}%", spread_text(rows, "median"),
                        spread_text(rows, "decades"), fmt_log10(median_of(rows, "log10_mean_s2"), 3),
                        fmt(median_of(rows, "theory_mean_s2"), 3), spread_text(rows, "relative_var"),
                        fmt(median_of(rows, "theory_relative_var"), 3)])  # fmt: skip
    head = ["act", "weights", "σ_w² (χ*)", "depth", "rank", "exact zeros", "median s", "decades (90%, nonzero)",
            "mean s²", "theory", "Var(s²)/mean²", "theory"]  # fmt: skip
    return markdown_table(head, out)


def spectrum_figure(ctx: Context) -> str:
    """One panel per (activation, depth): for each init, the fraction of its pooled singular values at most s, s
    over their root mean square on a log axis; exact zeros lie below every s, so a curve starts at their fraction
    (ReLU's rank loss). Dashed, free probability's (over its own mean, the wide limit's zeros included)."""
    runs = [(run_row(ctx, r), files.read_json(ctx.root / "runs" / r["run"] / "summary.json")) for r in ctx.rows]
    runs = [(r, s["jacobian"]) for r, s in runs if s and (s.get("jacobian") or {}).get("applies")]
    acts, depths = sorted({r["act"] for r, _ in runs}, reverse=True), sorted({r["depth"] for r, _ in runs})
    fig, axes = plots.figure(len(acts), len(depths), figsize=(5.5 * len(depths), 3.6 * len(acts)), squeeze=False)
    names = sorted({f"{r['kind']}, σ_w² {fmt(r['sigma_w2'], 4)}" for r, _ in runs})
    for (i, act), (j, depth) in ((a, d) for a in enumerate(acts) for d in enumerate(depths)):
        ax = axes[i][j]
        for r, e in ((r, e) for r, e in runs if r["act"] == act and r["depth"] == depth):
            name, total, zeros = (
                f"{r['kind']}, σ_w² {fmt(r['sigma_w2'], 4)}",
                e["width"] * e["examples"],
                sum(r["zeros"]),
            )
            logs = np.sort(np.asarray(e["log10_singular_values"], dtype=float)) - e["log10_mean_s2"] / 2
            colour = plots.activation_color(name, names)
            ax.step(logs, (zeros + np.arange(1, logs.size + 1)) / total, where="post", color=colour, lw=1.5,
                    label=f"{name}: {fmt(r['decades'], 3)} decades, {100 * zeros / total:.0f}% zeros")  # fmt: skip
            predicted = e.get("theory") or {}
            if logs.size and (predicted.get("density") or {}).get("applies"):  # drawn where its grid reaches
                bottom = 0.5 * math.log10(predicted["density"]["s2"][0] / predicted["mean_s2"])
                x = np.linspace(max(logs[0], bottom), logs[-1], 400)
                ax.plot(x, theory_cdf(predicted, x), lw=1.0, ls="--", color=colour)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{act}, depth {depth}", fontsize=9)
        ax.set_xlabel(r"$\log_{10}(s / \sqrt{\overline{s^2}})$, $s$ of $\partial z_L/\partial z_1$ at step 0")
        ax.set_ylabel("fraction of singular values ≤ s")
        ax.grid(alpha=0.3)
        plots.legend(ax, fontsize=7, loc="upper left")
    return ctx.figure(fig, "spectra")


def theory_cdf(predicted: dict, log10_s: np.ndarray) -> np.ndarray | None:
    """Free probability's fraction of singular values at most s, at log10(s / sqrt(mean s^2)) (its own mean): what
    lies below its grid (the wide limit's zeros, half of all for ReLU) counts below every s, as measured zeros do.
    None if the density was not solved."""
    density = predicted.get("density") or {}
    if not density.get("applies"):
        return None
    return 1.0 - density["mass"] + spectrum_density.cdf(density, predicted["mean_s2"] * 100.0**log10_s)


def transient(ctx: Context, depth: int, sigma_b2: float) -> str:
    """Where tanh's mean-field q, started by the first layer (features -> width), settles near q*; chi along the
    way; what free probability gives along that q and with every layer at q*."""
    width, features = ctx.setting("width"), data.check(ctx.setting("data")).features
    critical = theory.critical_sigma_w2("tanh", sigma_b2)
    first = critical * features / width  # orthogonal rows of unit norm, and he_normal's fan_out: the same
    found = theory.predict("tanh", depth, [first] + [critical] * (depth - 1), sigma_b2, q0=1.0)
    q_star = theory.fixed_point("tanh", critical, sigma_b2).q_star
    far = [q_star <= 0 or abs(q / q_star - 1) > SETTLED_WITHIN for q in found.q]
    settled = next((i + 1 for i in range(depth) if not any(far[i:])), None)
    along = spectrum.jacobian_moments("tanh", found.q[:-1], [critical] * (depth - 1), True)
    at_q_star = spectrum.jacobian_moments("tanh", [q_star] * (depth - 1), [critical] * (depth - 1), True)
    where = f"from layer {settled} on" if settled else "at no layer: the whole net is in the transient"
    return (f"at depth {depth}, q is within {SETTLED_WITHIN:.0%} of q* {where}; χ rises from {fmt(found.chi[0], 2)} "
            f"(layer 1) to {fmt(found.chi[-1], 5)}, and their product, the mean s² of an orthogonal net, is "
            f"{fmt(along['mean_s2'], 3)}; free probability's Var(s²)/mean² (orthogonal) is "
            f"{fmt(along['relative_var'], 3)} along this q, {fmt(at_q_star['relative_var'], 3)} with every layer at "
            f"q*")  # fmt: skip


def setting(ctx: Context, sigma_b2: float) -> str:
    """The setting: width, depths, sigma_b^2, each activation's critical point, the transient, the measurement."""
    critical = theory.critical_sigma_w2("tanh", sigma_b2)
    q_star = theory.fixed_point("tanh", critical, sigma_b2).q_star
    width, features = ctx.setting("width"), data.check(ctx.setting("data")).features
    depths = sorted(ctx.sweep.grid.get("depth", [ctx.setting("depth")]))
    relu_v = [spectrum.derivative_moments("relu", q) for q in (0.1, 1.0, 10.0)]
    q_1 = critical * features / width + sigma_b2
    return (
        f"Width {width}, depths {', '.join(map(str, depths))}, biases N(0, {sigma_b2:g}). Each activation at its own "
        f"critical point (χ* = σ_w² E[φ'(z)²] at the fixed point q* is 1) and at the other's: tanh's critical σ_w² "
        f"at this σ_b² is {fmt(critical, 5)} (q* = {fmt(q_star, 3)}), ReLU's is 2 (He's gain √2: χ = σ_w²/2 at "
        f"any q); the tables give χ* beside each σ_w². Orthogonal weights, or i.i.d. Gaussian ones of the same σ_w² "
        f"(he_normal, mode fan_out: the first layer, {features} → {width}, gets σ_w² × {features}/{width} under both, "
        f"so both follow the same mean-field q). **The first layer starts tanh's q far above q*:** the inputs are "
        f"standardized (mean square 1), so q_1 = {fmt(q_1, 3)} = {fmt(q_1 / q_star if q_star > 0 else math.inf, 3)} "
        f"q*, and q falls back only like 1/layer: "
        + "; ".join(transient(ctx, d, sigma_b2) for d in depths)
        + ". Near criticality thus describes the deep layers; the layers before are a transient with χ < 1, which the "
        f"theory columns follow layer by layer. The singular values of dz_L/dz_1 at step 0 are pooled over 4 examples "
        f"of the first batch, each exact to its own relative 1e-7 however many decades they span "
        f"(lab/measure/product_svd.py); exact zeros (ReLU's dead units: rank lost) are counted apart, and *decades "
        f"(90%, nonzero)* = log10 of the 95th over the 5th percentile of the nonzero values. Theory: mean s² = the "
        f"mean-field product of χ; Var(s²)/mean² = Σ_l (E[φ'⁴]/E[φ'²]² - 1) + (1 per Gaussian layer), zeros "
        f"included (free probability); ReLU's φ'² is 0 or 1, so its per-layer term is "
        f"{', '.join(fmt(m2 / m1**2 - 1, 3) for m1, m2 in relu_v)} at q = 0.1, 1, 10 whatever σ_w², q or the "
        f"weights, and half of its eigenvalues are exactly 0 in the wide limit. Seeds {', '.join(map(str, ctx.seeds))}: "
        f"the table gives the median over them and, in brackets, their range."
    )


def band_part(says: str, srows: list[dict], cfgs: list[dict], keys: list[tuple], threshold: float, wide: bool,
              zeros: bool | None = None) -> Part:  # fmt: skip
    """The decades of the nonzero values (median over seeds) of every (config in ``keys``, depth) above
    (``wide``) or below ``threshold``; with ``zeros``, also whether every run has exact zeros (True) or none."""
    depths, seeds = sorted({r["depth"] for r in srows}), sorted({r["seed"] for r in srows})

    def judge(chosen):
        found = [median_of(among(srows, chosen, key=k, depth=d), "decades") for k in keys for d in depths]
        found = [v for v in found if not math.isnan(v)]
        if not found:
            return math.nan
        return min(found) - threshold if wide else threshold - max(found)

    rows = [r for r in srows if key_of(r) in keys]
    has_zeros = [sum(r["zeros"]) > 0 for r in rows]
    numbers = "; ".join(f"{label(c)}: decades " + ", ".join(
        f"{fmt(median_of(among(srows, None, key=c['key'], depth=d), 'decades'), 3)} (depth {d})" for d in depths)
        for c in cfgs if c["key"] in keys)  # fmt: skip
    if zeros is not None:
        fractions = [sum(r["zeros"]) / (r["width"] * len(r["zeros"])) for r in rows] or [math.nan]
        numbers += f"; exact zeros {100 * min(fractions):.0f}%..{100 * max(fractions):.0f}% of the values"
    also = zeros is None or (bool(rows) and all(z == zeros for z in has_zeros))
    return judged(says, seed_margin(judge, seeds, "decades"), numbers, also)


def spectrum_parts(srows: list[dict], cfgs: list[dict]) -> list[Part]:
    """Orthogonal tanh narrow and of full rank at its critical point only, Gaussian tanh wide, ReLU never narrow."""
    return [
        band_part(f"at its critical σ_w², orthogonal tanh keeps the middle 90% of its singular values within "
                  f"{NARROW_DECADES:g} decades, with full rank", srows, cfgs, keys_of(cfgs, "tanh", "orthogonal", True),
                  NARROW_DECADES, False, zeros=False),
        band_part(f"orthogonal weights alone are not enough: off its critical point, orthogonal tanh spreads them "
                  f"over more than {NARROW_DECADES:g} decades", srows, cfgs, keys_of(cfgs, "tanh", "orthogonal", False),
                  NARROW_DECADES, True),
        band_part(f"Gaussian tanh at the critical σ_w² spreads them over more than {WIDE_DECADES:g} decades", srows,
                  cfgs, keys_of(cfgs, "tanh", "Gaussian", True), WIDE_DECADES, True),
        band_part(f"ReLU is isometric with none of the inits, its own critical one included: it loses rank to exact "
                  f"zeros and spreads its nonzero values over more than {NARROW_DECADES:g} decades", srows, cfgs,
                  keys_of(cfgs, "relu"), NARROW_DECADES, True, zeros=True),
    ]  # fmt: skip


def reproduction(ctx: Context, light: list[dict]) -> tuple[int, int]:
    """How many of the report's own runs have the spectrum (rank, zeros, decades, mean s^2) of the committed run of
    the same net, depth and seed; out of how many have one."""
    fields = ("rank", "zeros", "decades", "log10_mean_s2", "relative_var")
    same, compared = 0, 0
    for r in spectra(light):
        theirs = among(spectra(ctx.committed["rows"]), [r["seed"]], key=key_of(r), depth=r["depth"])
        if theirs:
            compared += 1
            same += all(np.allclose(np.array(theirs[0][f], dtype=float), np.array(r[f], dtype=float),
                                    rtol=SAME_WITHIN, atol=0, equal_nan=True) for f in fields)  # fmt: skip
    return same, compared


def claim_parts(rows: list[dict], sigma_b2: float, chance_loss: float, reproduced=None) -> tuple[list[Part], Races]:
    """The check's parts on the rows (committed or the report's own): the spectra's; with ``reproduced`` (same,
    compared: the report's runs against the committed ones), whether they agree, and the training race's."""
    srows, cfgs = spectra(rows), configs(rows, sigma_b2)
    parts, races = spectrum_parts(srows, cfgs), Races(rows, cfgs, chance_loss)
    if reproduced is not None:
        same, compared = reproduced
        parts.append(Part("the report's own runs reproduce the committed spectra", compared > 0 and same == compared,
                          f"{same} of {compared} identical to a relative {SAME_WITHIN:g}"))  # fmt: skip
        parts += speed_parts(races, cfgs)
    else:
        parts.append(Part(f"isometry trains faster, by orders of magnitude (at least ×{SPEEDUP_ORDERS:g})", None,
                          "the race is in the full grid, and its committed table is not here: `make report "
                          "ONLY=isometry FULL=1`"))  # fmt: skip
    return parts, races


def _judged(ctx: Context):
    """(the report's own rows, the rows judged: the committed full grid's if any, the parts, the races)."""
    light = export(ctx)
    rows = ctx.committed["rows"] if ctx.committed else light
    reproduced = reproduction(ctx, light) if ctx.committed else None
    return (light, rows, *claim_parts(rows, _sigma_b2(ctx), -math.log(ctx.chance()), reproduced))


def analyze(ctx: Context) -> str:
    """The setting, the spectra (the committed full grid's seeds if there is one, else the report's own runs)
    and their figure, then the training race (committed)."""
    _, rows, _, races = _judged(ctx)
    sigma_b2, chance_loss = _sigma_b2(ctx), -math.log(ctx.chance())
    srows, cfgs = spectra(rows), configs(rows, sigma_b2)
    lines = [theory_agreement(srows, act) for act in sorted({c["act"] for c in cfgs}, reverse=True)]
    lines += [text for text in (relu_at_its_critical_point(srows, cfgs), rank_text(srows)) if text]
    body = [setting(ctx, sigma_b2), spectra_table(srows, cfgs), "", spectrum_figure(ctx)]
    if ctx.committed:
        body += [training_text(ctx, rows, races, chance_loss), training_table(rows, cfgs, races, chance_loss),
                 training_figure(ctx, rows, races)]  # fmt: skip
    else:
        body.append("Training: no committed table of the full grid here (`make report ONLY=isometry FULL=1`): the "
                    "speed-up is not judged.")  # fmt: skip
    body[2] = "**Measured.** " + "; ".join(lines) + "."
    return paragraphs(*body)


def check(ctx: Context) -> Check:
    """The claim in parts: each band of the spectra, ReLU's rank, the reproduction and the race (committed)."""
    return Check(_judged(ctx)[2])


def expected_relu_rank(width: int, depth: int) -> float:
    """E[rank of dz_L/dz_1] of a ReLU net: generic weights keep the rank of a product at its smallest factor's, here
    the fewest active units over the depth - 1 layers of D, each Binomial(width, 1/2): E[min] = sum_k P(B >= k)^(L-1)."""
    at_least = np.cumsum([math.comb(width, k) for k in range(width, -1, -1)])[::-1] / 2.0**width  # P(B >= k)
    return float(np.sum(at_least[1:] ** (depth - 1)))


def rank_text(srows: list[dict]) -> str:
    """ReLU's measured ranks beside the expected fewest active units (and free probability's wide limit, half)."""
    parts = []
    for depth in sorted({r["depth"] for r in srows if r["act"] == "relu"}):
        ranks = [k for r in srows if r["act"] == "relu" and r["depth"] == depth for k in r["rank"]]
        width = next(r["width"] for r in srows if r["act"] == "relu" and r["depth"] == depth)
        parts.append(f"depth {depth}: {min(ranks)}..{max(ranks)} of {width}, expected "
                     f"{fmt(expected_relu_rank(width, depth), 3)}")  # fmt: skip
    return ("ReLU's rank (the fewest active units over the layers: the minimum of L - 1 Binomial(width, ½) counts; "
            f"free probability's wide limit: half): {'; '.join(parts)}") if parts else ""  # fmt: skip


def relu_at_its_critical_point(srows: list[dict], cfgs: list[dict]) -> str:
    """What ReLU's spectra show at its own critical point, plainly: the scale, the zeros, the spread."""
    keys = keys_of(cfgs, "relu", critical=True)
    rows = [r for r in srows if key_of(r) in keys]
    if not rows:
        return ""
    means = [10 ** r["log10_mean_s2"] for r in rows]
    zeros = [sum(r["zeros"]) / (r["width"] * len(r["zeros"])) for r in rows]
    decades = [number(r["decades"]) for r in rows]
    return (f"at its own critical point ReLU's mean s² stays of order 1 ({fmt(min(means), 2)}..{fmt(max(means), 2)}, "
            f"a heavy-tailed mean over 4 examples; free probability: 1), yet {100 * min(zeros):.0f}%..{100 * max(zeros):.0f}% of its singular values are "
            f"exactly 0 and the rest spread over {fmt(min(decades), 3)}..{fmt(max(decades), 3)} decades: it is not "
            f"isometric there either")  # fmt: skip


def theory_agreement(srows: list[dict], act: str) -> str:
    """How far the measured Var(s^2)/mean^2 (zeros included) is from free probability's, over one activation."""
    errors = [log_error(r["relative_var"], r.get("theory_relative_var")) for r in srows if r["act"] == act]
    errors = [e for e in errors if math.isfinite(e)]
    if not errors:
        return f"{act}: no run to compare with free probability"
    worst = 10 ** max(errors)
    within = "within" if worst <= THEORY_FACTOR else "not within"
    return (f"{act}: measured Var(s²)/mean² (zeros included) {within} a factor {THEORY_FACTOR:g} of free "
            f"probability's (worst a factor {fmt(worst, 3)} over {len(errors)} runs)")  # fmt: skip


FINDING = Finding(
    "isometry",
    "Dynamical isometry: the whole Jacobian spectrum",
    "At its critical point (χ = 1, small q*), an orthogonal tanh network keeps the whole spectrum of the Jacobian's "
    "singular values in a narrow band at depth 32 to 128, Gaussian weights spread it over many decades, and ReLU "
    "cannot be isometric with any init, its own critical one included; isometry trains faster, by orders of "
    "magnitude.",
    'Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid in deep learning through dynamical isometry" '
    '(NeurIPS; abstract: "ReLU networks are incapable of dynamical isometry", networks achieving it "learn orders '
    'of magnitude faster", "properly-initialized deep sigmoidal networks consistently outperform deep ReLU '
    'networks"); Pennington, Schoenholz & Ganguli 2018, "The emergence of spectral universality in deep networks" '
    "(AISTATS).",
    analyze,
    check,
    full=FULL_TABLE,
    export=export,
)
