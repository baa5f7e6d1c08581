"""Each finding's claim check on small synthetic rows and records, written so that it must hold, hold partly, not
hold, and sit within noise: the expected status is decided here by hand from the numbers, independently of the
check; and moving a check's threshold past the numbers flips its status, so the thresholds are really used."""

import math
from pathlib import Path

import pytest

from tinygrad_act import findings
from tinygrad_act.findings import (
    common,
    dying_relu,
    exploding,
    glorot_bengio,
    he_2015,
    isometry,
    isometry_training,
    orthogonal,
    rescue,
    selu,
    vanishing_depth,
)
from tinygrad_act.findings.common import Check, Context, Margin, Part, judged, seed_margin, worst
from tinygrad_act.lab.sweep import grid as sweeps
from tinygrad_act.lab.theory import blocks

HOLDS, PARTLY, NOT, NOISE = "holds", "holds partly", "does not hold", "within noise"


def context(grid: dict, rows: list[dict], records: dict | None = None, fixed: dict | None = None) -> Context:
    """A Context over synthetic rows; ``records`` (run -> metrics records) stands in for the run directories."""
    ctx = Context("synthetic", sweeps.Sweep(grid, fixed or {}), rows, Path("/nonexistent"), Path("/nonexistent"))
    ctx._records = dict(records or {})
    return ctx


def record(step: int = 0, **fields) -> dict:
    """One metrics record: every field is a list of per-hidden-layer values; an output layer is appended."""
    depth = len(next(iter(fields.values())))
    layers = [{"delta_norm": 1.0, **{k: v[i] for k, v in fields.items()}} for i in range(depth)]
    return {"step": step, "layers": [*layers, {"delta_norm": 1.0}]}


def statuses(check: Check) -> list[str]:
    return [part.status for part in check.parts]


# ---- margins, parts and checks ---------------------------------------------------------------------------------
def test_a_part_holds_by_its_margins_sign_and_is_within_noise_when_the_seeds_spread_past_it():
    assert judged("a", Margin(0.3, "decades"), "").status == HOLDS  # one seed: no spread to compare
    assert judged("a", Margin(-0.3, "decades"), "").status == "does not hold"
    assert judged("a", Margin(0.3, "decades", spread=0.1), "").status == HOLDS
    assert judged("a", Margin(0.3, "decades", spread=0.3), "").status == NOISE  # inside the spread, either side
    assert judged("a", Margin(-0.2, "decades", spread=0.3), "").status == NOISE
    assert judged("a", Margin(0.0, "runs", spread=0.0), "").status == HOLDS  # every seed alike, on the threshold
    assert judged("a", Margin(math.nan, "decades"), "").status == "does not hold"  # nothing to judge


def test_a_check_adds_its_parts_up_and_prints_each_with_its_numbers_and_margin():
    check = Check([Part("a", True, "x = 1", Margin(0.5, "decades", 0.1)), Part("b", False, "y = 2")])
    assert check.status == PARTLY
    assert check.markdown().splitlines() == [
        "**Check, computed from the runs: holds partly.**",
        "",
        "- a: **holds** (x = 1; margin +0.5 decades, seeds' spread 0.1)",
        "- b: **does not hold** (y = 2)",
    ]
    noisy = Part("n", True, "", Margin(0.1, "points", 0.2))
    assert Check([Part("a", True, "")]).status == HOLDS and Check([Part("a", False, "")]).status == NOT
    assert Check([noisy, noisy]).status == NOISE
    assert Check([noisy, Part("a", True, "")]).status == PARTLY
    assert Check([noisy, Part("a", False, "")]).status == NOT  # nothing holds beyond noise
    assert "margin +0.1 points, seeds' spread 0.2" in Check([noisy]).markdown()
    assert "margin -inf decades, one seed" in Check([judged("d", Margin(-math.inf, "decades"), "")]).markdown()


def test_a_seed_margin_spreads_over_each_seed_or_over_leaving_one_out():
    margins = {None: 0.2, (0,): 0.1, (1,): 0.5, (0, 1): 0.3, (1, 2): 0.25, (0, 2): 0.05, (2,): 0.2}
    judge = lambda seeds: margins[tuple(seeds) if seeds is not None else None]  # noqa: E731
    assert seed_margin(judge, [0, 1, 2], "x") == Margin(0.2, "x", pytest.approx(0.3))  # seed 1: 0.5 - 0.2
    assert seed_margin(judge, [0, 1, 2], "x", leave_one_out=True).spread == pytest.approx(0.15)  # without 1: 0.05
    assert math.isnan(seed_margin(judge, [0], "x").spread)
    assert math.isnan(seed_margin(lambda s: 1.0, [0, 1], "x", leave_one_out=True).spread)  # needs three seeds
    # a diverged seed (-inf) against a margin that holds: infinite spread; an exact one (+inf) is no spread
    assert seed_margin(lambda s: {None: 0.5, (0,): -math.inf}.get(s and tuple(s), 0.5), [0, 1], "x").spread == math.inf
    exact = seed_margin(lambda s: {None: 0.5, (0,): math.inf}.get(s and tuple(s), 0.4), [0, 1], "x")
    assert exact.spread == pytest.approx(0.1)
    assert worst([0.3, -0.1, 2]) == -0.1 and math.isnan(worst([])) and math.isnan(worst([1.0, math.nan]))


def test_every_finding_checks_its_claim_and_every_part_of_the_rewritten_ones_has_a_margin():
    assert all(f.check is not None for f in findings.FINDINGS)
    ctx = _vanishing([("sigmoid", lambda d: 0.2 ** (d - 1)), ("relu", lambda d: 1.0)])
    assert all(part.margin is not None for part in vanishing_depth.check(ctx).parts)


# ---- finding 1 ------------------------------------------------------------------------------------------------
def _vanishing(ratios, depths=(5, 50), seeds=(0, 1, 2), diverged=()) -> Context:
    """Per activation, r at each depth from r(depth) (or r(depth, seed)); (act, depth) in ``diverged``: every
    run there diverged in training."""
    rows = []
    for act, f in ratios:
        for d in depths:
            for s in seeds:
                r = f(d, s) if f.__code__.co_argcount == 2 else f(d)
                gone = (act, d) in diverged
                rows.append({"act": act, "depth": d, "seed": s, "ratio_init": r,
                             "per_layer_factor_init": r ** (1 / (d - 1)), "verdict": "healthy",
                             "status": "diverged" if gone else "completed",
                             "verdict_final": "diverged" if gone else "healthy"})  # fmt: skip
    return context({"act": [a for a, _ in ratios], "depth": list(depths), "seed": list(seeds)}, rows)


SIGMOID, TANH, RELU = ("sigmoid", lambda d: 0.2 ** (d - 1)), ("tanh", lambda d: 0.5), ("relu", lambda d: 1.0)


@pytest.mark.parametrize(
    "ratios, diverged, status",
    [
        ([SIGMOID, TANH, RELU], (), HOLDS),
        ([SIGMOID, TANH, RELU, ("gelu", lambda d: 1.09 ** (d - 1))], (), HOLDS),  # 1.09 < 3^(1/10) = 1.116
        ([SIGMOID, TANH, RELU, ("swish", lambda d: 1.18 ** (d - 1))], (), PARTLY),  # 1.18 > 1.116
        ([SIGMOID, TANH, ("gelu", lambda d: 1.09 ** (d - 1))], (("gelu", 50),), PARTLY),  # diverged: never holds
        ([("sigmoid", lambda d: 0.5), ("tanh", lambda d: 0.1), ("relu", lambda d: 1e-3)], (), NOT),
    ],
)
def test_vanishing_depth_judges_r_per_layer_and_never_counts_a_diverged_run(ratios, diverged, status):
    check = vanishing_depth.check(_vanishing(ratios, diverged=diverged))
    assert check.status == status, check.markdown()
    if status == HOLDS:  # relu: r = 1, the band's narrowest at depth 5: log10(3) * 4 / 10 decades
        assert check.parts[2].margin.value == pytest.approx(0.4 * math.log10(3))
    if diverged:
        assert statuses(check)[-1] == NOT and "diverged in 3 of 3 runs at depth 50" in check.markdown()


def test_vanishing_depth_near_one_band_is_x3_per_10_layers_and_moving_it_flips_the_part(monkeypatch):
    gelu = [("gelu", lambda d: 1.09 ** (d - 1))]
    assert vanishing_depth.check(_vanishing(gelu)).status == HOLDS
    monkeypatch.setattr(vanishing_depth, "NEAR_ONE_PER_10_LAYERS", 2.0)  # 2^(1/10) = 1.072 < 1.09
    assert vanishing_depth.check(_vanishing(gelu)).status == NOT


def test_vanishing_depth_is_within_noise_when_the_seeds_straddle_the_band():
    # depth 50: the band is |log10 r| <= 0.0477 * 49 = 2.34 decades; seeds at 2.2, 2.3 and 2.5
    straddle = [("relu", lambda d, s: 10 ** ({0: 2.2, 1: 2.3, 2: 2.5}[s] if d == 50 else 0.0))]
    check = vanishing_depth.check(_vanishing(straddle))
    assert check.status == NOISE, check.markdown()
    one_diverged = _vanishing([RELU], seeds=(0, 1, 2))
    one_diverged.rows[-1].update(status="diverged", verdict_final="diverged")  # seed 2 at depth 50
    assert vanishing_depth.check(one_diverged).status == NOISE  # 2 of 3 seeds hold, the third diverged


# ---- finding 2 ------------------------------------------------------------------------------------------------
def _glorot(accuracy: dict, ratio: dict, seeds=(0, 1, 2)) -> Context:
    """Every seed alike, unless a value is a dict seed -> value."""

    def at(value, seed):
        return value[seed] if isinstance(value, dict) else value

    rows = [{"act": a, "init": i, "seed": s, "test_accuracy": at(accuracy[a, i], s), "ratio_init": at(ratio[a, i], s)}
            for a, i in accuracy for s in seeds]  # fmt: skip
    grid = {"act": ["sigmoid", "tanh", "softsign"], "init": ["standard", "xavier_uniform"], "seed": list(seeds)}
    return context(grid, rows)


GOOD_ACC = {
    ("sigmoid", "standard"): 0.1,
    ("sigmoid", "xavier_uniform"): 0.1,
    ("tanh", "standard"): 0.5,
    ("tanh", "xavier_uniform"): 0.8,
    ("softsign", "standard"): 0.6,
    ("softsign", "xavier_uniform"): 0.7,
}
GOOD_R = {
    ("sigmoid", "standard"): 1e-4,
    ("sigmoid", "xavier_uniform"): 1e-3,
    ("tanh", "standard"): 0.1,
    ("tanh", "xavier_uniform"): 0.8,
    ("softsign", "standard"): 0.1,
    ("softsign", "xavier_uniform"): 0.7,
}
# a sigmoid net learns best, the standard init's r exceeds 1, normalized r is far from 1, softsign gains more
BAD_ACC = {**GOOD_ACC, ("sigmoid", "xavier_uniform"): 0.9, ("tanh", "xavier_uniform"): 0.55}
BAD_R = {k: (2.0 if k[1] == "standard" else 0.1) for k in GOOD_R}
# tanh's gain over softsign: +5 points with seed 0, -5 with seed 1, +1 with seed 2 (median +1)
NOISY_ACC = {**GOOD_ACC, ("tanh", "xavier_uniform"): {0: 0.65, 1: 0.55, 2: 0.61}}


@pytest.mark.parametrize(
    "accuracy, ratio, status",
    [(GOOD_ACC, GOOD_R, HOLDS), (GOOD_ACC, BAD_R, PARTLY), (BAD_ACC, BAD_R, NOT), (NOISY_ACC, GOOD_R, PARTLY)],
)
def test_glorot_bengio_checks_gradients_the_worst_net_and_whom_the_normalized_init_helps_most(accuracy, ratio, status):
    check = glorot_bengio.check(_glorot(accuracy, ratio))
    assert check.status == status, check.markdown()
    assert len(check.parts) == 4
    if accuracy is GOOD_ACC:  # the best sigmoid net's error 90% against the worst other net's, 50%
        assert check.parts[1].margin == Margin(pytest.approx(40.0), "points", 0.0)
    if accuracy is NOISY_ACC:
        assert statuses(check) == [HOLDS, HOLDS, HOLDS, NOISE]


def test_glorot_bengio_similar_size_band_flips_with_its_factor(monkeypatch):
    ratio = {**GOOD_R, ("tanh", "xavier_uniform"): 0.6}
    assert statuses(glorot_bengio.check(_glorot(GOOD_ACC, ratio)))[2] == HOLDS
    monkeypatch.setattr(glorot_bengio, "SIMILAR_WITHIN", 1.5)
    assert statuses(glorot_bengio.check(_glorot(GOOD_ACC, ratio)))[2] == NOT


def test_glorot_bengio_says_plain_sgd_when_momentum_is_zero():
    ctx = context({"act": ["tanh"]}, [], fixed={"momentum": 0.0})
    assert glorot_bengio._optimizer(ctx) == "plain SGD (momentum 0)"
    assert glorot_bengio._optimizer(context({"act": ["tanh"]}, [])) == "SGD with momentum 0.9"


# ---- finding 3 ------------------------------------------------------------------------------------------------
def _he(xavier, he, seeds=(0,)) -> Context:
    """(test accuracy, r) of each net, or per seed a list of them; depth 3: theory's gap 2^(2/2) = 2."""
    rows = [
        {"init": init, "seed": s, "test_accuracy": acc, "ratio_init": r, "final_loss": 1.0}
        for init, values in (("xavier_normal", xavier), ("he_normal", he))
        for s, (acc, r) in zip(seeds, values if isinstance(values, list) else [values] * len(seeds))
    ]
    return context({"init": ["xavier_normal", "he_normal"], "seed": list(seeds)}, rows, fixed={"depth": 3})


@pytest.mark.parametrize(
    "xavier, he, status",
    [
        ((0.1, 0.10), (0.5, 0.20), HOLDS),
        ((0.1, 0.10), (0.5, 1.00), PARTLY),  # a gap of 10
        ((0.5, 0.10), (0.1, 1.00), NOT),
    ],
)
def test_he_2015_checks_stall_converge_and_the_gap(xavier, he, status):
    ctx = _he(xavier, he)
    assert ctx.chance() == pytest.approx(0.1)  # MNIST-1D: 10 classes
    check = he_2015.check(ctx)
    assert check.status == status, check.markdown()


def test_he_2015_gap_within_noise_and_its_band_flips_the_part(monkeypatch):
    # gaps 1.2, 2.4, 1.7 against theory's 2: the median seed is 15% off, one seed 40% off
    he = [(0.5, 0.12), (0.5, 0.24), (0.5, 0.17)]
    check = he_2015.check(_he([(0.1, 0.1)] * 3, he, seeds=(0, 1, 2)))
    assert statuses(check) == [HOLDS, HOLDS, NOISE], check.markdown()
    assert he_2015.check(_he((0.1, 0.1), (0.5, 0.22))).status == HOLDS  # x1.1
    monkeypatch.setattr(he_2015, "GAP_WITHIN", 1.05)
    assert he_2015.check(_he((0.1, 0.1), (0.5, 0.22))).status == PARTLY


# ---- finding 4 ------------------------------------------------------------------------------------------------
def _dying(runs: dict) -> Context:
    """runs: (act, lr, seed) -> (status, dead fraction over training); two hidden layers alike."""
    rows, records = [], {}
    for (act, lr, seed), (status, dead) in runs.items():
        run = f"{act}-{lr}-{seed}"
        shown = "diverged" if status == "diverged" else "healthy"
        rows.append({"act": act, "lr": lr, "seed": seed, "status": status, "verdict": shown, "verdict_final": shown,
                     "final_loss": 1.0, "test_accuracy": 0.5, "run": run})  # fmt: skip
        records[run] = [record(10 * i, dead_fraction=[d, d]) for i, d in enumerate(dead)]
    acts = sorted({a for a, _, _ in runs}, key=["relu", "leaky_relu", "elu"].index)
    seeds = sorted({s for _, _, s in runs})
    return context({"act": acts, "lr": sorted({lr for _, lr, _ in runs}), "seed": seeds}, rows, records)


ALIVE = {
    ("relu", 0.02, 0): ("completed", [0.08, 0.05]),
    ("relu", 0.2, 0): ("completed", [0.08, 0.5, 0.5]),
    ("leaky_relu", 0.02, 0): ("completed", [0.0, 0.0]),
    ("leaky_relu", 0.2, 0): ("diverged", [0.0, 0.9]),  # underflow in a blown-up net: not counted
}


@pytest.mark.parametrize(
    "runs, status",
    [
        (ALIVE, HOLDS),
        ({**ALIVE, ("elu", 0.02, 0): ("completed", [0.0, 0.0]), ("elu", 0.2, 0): ("completed", [0.0, 0.5])}, PARTLY),
        (
            {**ALIVE, ("relu", 0.02, 0): ("completed", [0.5, 0.6]), ("relu", 0.2, 0): ("completed", [0.6, 0.1]),
             ("leaky_relu", 0.02, 0): ("completed", [0.0, 0.3])},
            NOT,
        ),
    ],
)  # fmt: skip
def test_dying_relu_checks_killing_recovery_and_who_stays_alive_without_counting_diverged_runs(runs, status):
    check = dying_relu.check(_dying(runs))
    assert check.status == status, check.markdown()


def test_dying_relu_recovery_within_noise_over_seeds_and_its_tolerance_flips_it(monkeypatch):
    # the peak-minus-end recovery at lr 0.2: 4 points (seed 0), 7 points (seed 1): median 5.5 points > 5
    runs = {**ALIVE, ("relu", 0.2, 0): ("completed", [0.1, 0.54, 0.5]),
            ("relu", 0.2, 1): ("completed", [0.1, 0.57, 0.5]), ("relu", 0.02, 1): ("completed", [0.08, 0.05]),
            ("leaky_relu", 0.02, 1): ("completed", [0.0, 0.0])}  # fmt: skip
    assert statuses(dying_relu.check(_dying(runs)))[1] == NOISE
    assert statuses(dying_relu.check(_dying(ALIVE)))[1] == HOLDS  # no recovery at all
    half = {**ALIVE, ("leaky_relu", 0.02, 0): ("completed", [0.0, 0.005])}  # 0.5% dead at the end
    assert statuses(dying_relu.check(_dying(half)))[2] == HOLDS
    monkeypatch.setattr(dying_relu, "ALIVE_BELOW", 0.004)
    assert statuses(dying_relu.check(_dying(half)))[2] == NOT


def test_dying_relu_shows_no_dead_fraction_at_the_end_for_a_diverged_run():
    table = dying_relu.dead_table(_dying(ALIVE))
    assert "| leaky_relu | 0.2 | 0.0% | - | 50.0% | diverged |" in table
    assert "| relu | 0.2 | 8.0% | 50.0% | 50.0% | completed |" in table


# ---- finding 5 ------------------------------------------------------------------------------------------------
def _exploding_rows(r_large: float, clipped_status: str, seed: int = 0) -> list[dict]:
    base = {"act": "relu", "final_loss": 1.0, "test_accuracy": 0.3, "seed": seed}
    return [
        {**base, "init": "xavier_normal", "clip": 0.0, "ratio_init": 1e-3, "predicted_ratio": 1e-3,
         "predicted_per_layer_factor": 0.7, "status": "completed"},
        {**base, "init": "xavier_normal:gain=2", "clip": 0.0, "ratio_init": r_large, "predicted_ratio": 700.0,
         "predicted_per_layer_factor": 1.41, "status": "diverged"},
        {**base, "init": "xavier_normal:gain=2", "clip": 1.0, "ratio_init": r_large, "predicted_ratio": 700.0,
         "predicted_per_layer_factor": 1.41, "status": clipped_status},
    ]  # fmt: skip


GRID5 = {"act": ["relu"], "init": ["xavier_normal", "xavier_normal:gain=2"], "clip": [0.0, 1.0]}


@pytest.mark.parametrize(
    "r_large, clipped, status", [(720.0, "completed", HOLDS), (5.0, "completed", PARTLY), (0.5, "diverged", NOT)]
)
def test_exploding_checks_growth_against_theory_and_that_clipping_keeps_training_finite(r_large, clipped, status):
    check = exploding.check(context(GRID5, _exploding_rows(r_large, clipped)))
    assert check.status == status, check.markdown()


def test_exploding_growth_within_noise_over_seeds_and_its_theory_band_flips_it(monkeypatch):
    # r over seeds 1200, 1500, 2000 against theory's 700: the median seed is x2.1 off, one seed x1.7
    rows = [row for seed, r in enumerate((1200.0, 1500.0, 2000.0)) for row in _exploding_rows(r, "completed", seed)]
    check = exploding.check(context({**GRID5, "seed": [0, 1, 2]}, rows))
    assert statuses(check) == [NOISE, HOLDS], check.markdown()
    monkeypatch.setattr(exploding, "THEORY_WITHIN", 1.01)
    assert exploding.check(context(GRID5, _exploding_rows(720.0, "completed"))).status == PARTLY


# ---- finding 6 ------------------------------------------------------------------------------------------------
RESCUE_DEPTH = 6


def _rescue(factors: dict, seeds=(0,), end: float = 1.0) -> Context:
    """factors: (residual, norm) -> measured r / the blocks' mean-field r (a dict seed -> factor for seeds);
    sigmoid, depth 6, sigma_w^2 = 1 in every layer (the records' weight gains), batch norm ends at r = ``end``."""
    rows, records = [], {}
    for (res, norm), factor in factors.items():
        theory = blocks.predict_ratio("sigmoid", [1.0] * RESCUE_DEPTH, res, norm)["ratio"]
        for seed in seeds:
            r = theory * (factor[seed] if isinstance(factor, dict) else factor)
            run = f"{res}-{norm}-{seed}"
            rows.append({"act": "sigmoid", "residual": res, "norm": norm, "seed": seed, "run": run, "ratio_init": r,
                         "ratio_final": end if norm == "batch" else r, "status": "completed", "verdict": "healthy",
                         "verdict_final": "healthy", "test_accuracy": 0.3})  # fmt: skip
            records[run] = [record(weight_gain=[1.0] * RESCUE_DEPTH)]
    grid = {"act": ["sigmoid"], "residual": [False, True], "norm": ["none", "batch", "layer"], "seed": list(seeds)}
    return context(grid, rows, records)


# the batch-norm net's mean field is below 1 for sigmoid (r = 0.23 at depth 6): measured 10x above it, r > 1
AS_THEORY = {(False, "none"): 1.0, (False, "layer"): 1.2, (False, "batch"): 10.0, (True, "none"): 1.3,
             (True, "layer"): 0.8, (True, "batch"): 1.1}  # fmt: skip


@pytest.mark.parametrize(
    "factors, end, status",
    [
        (AS_THEORY, 1.0, HOLDS),
        ({**AS_THEORY, (False, "layer"): 10.0}, 1.0, PARTLY),  # layer norm x10 off its theory
        ({**AS_THEORY}, 1e3, PARTLY),  # batch norm still exploding after training
        ({(False, "none"): 1e3, (False, "layer"): 10.0, (False, "batch"): 0.1, (True, "none"): 1e-3,
          (True, "layer"): 1e-3, (True, "batch"): 1e-3}, 1.0, NOT),
    ],
)  # fmt: skip
def test_rescue_judges_each_architecture_against_its_own_theory(factors, end, status):
    check = rescue.check(_rescue(factors, end=end))
    assert check.status == status, check.markdown()
    assert [p.says.split()[0] for p in check.parts] == ["plain", "no", "layer", "batch"]


def test_rescue_layer_norm_within_noise_and_the_theory_band_flips_it(monkeypatch):
    noisy = {**AS_THEORY, (False, "layer"): {0: 10**0.25, 1: 10**0.4}}  # margins +0.05 and -0.1 decades
    assert statuses(rescue.check(_rescue(noisy, seeds=(0, 1))))[2] == NOISE
    monkeypatch.setattr(rescue, "THEORY_WITHIN", 1.1)  # layer norm is 1.2x off
    assert statuses(rescue.check(_rescue(AS_THEORY)))[2] == NOT


# ---- finding 7 ------------------------------------------------------------------------------------------------
def _selu(depth: int, mean: float, stds) -> Context:
    """SELU/LeCun runs, one per seed, with alternating-sign means and the given std (a list: one per seed)."""
    means = [mean * (-1) ** i for i in range(depth)]  # alternating signs: the check must take |mean|
    stds = stds if isinstance(stds, list) else [stds]
    rows = [{"act": "selu", "init": "lecun_normal", "seed": s, "run": f"s{s}"} for s in range(len(stds))]
    records = {f"s{s}": [record(act_mean=means, act_std=[std] * depth)] for s, std in enumerate(stds)}
    return context({"act": ["selu"], "init": ["lecun_normal"], "seed": list(range(len(stds)))}, rows, records)


@pytest.mark.parametrize(
    "depth, mean, std, status",
    [
        (32, 0.02, 1.05, HOLDS),
        (32, 0.02, 2.0, PARTLY),
        (32, 0.5, 2.0, NOT),
        (10, 0.0, 1.0, NOT),
        (32, 0.0, [0.79**0.5, 0.82**0.5, 0.85**0.5], PARTLY),  # variances 0.79, 0.82, 0.85 against 0.8
    ],
)
def test_selu_checks_mean_and_variance_at_every_layer_of_a_net_of_30_or_more(depth, mean, std, status):
    check = selu.check(_selu(depth, mean, std))
    assert check.status == status, check.markdown()
    if isinstance(std, list):
        assert statuses(check) == [HOLDS, NOISE]


def test_selu_mean_band_flips_the_part(monkeypatch):
    check = selu.check(_selu(32, 0.05, 1.0))
    assert check.status == HOLDS
    assert [p.margin.value for p in check.parts] == [pytest.approx(0.05), pytest.approx(0.2)]  # to 0.1, to 0.8
    monkeypatch.setattr(selu, "MEAN_BAND", (-0.04, 0.04))
    assert selu.check(_selu(32, 0.05, 1.0)).status == PARTLY


# ---- finding 9 ------------------------------------------------------------------------------------------------
def _orthogonal(profiles: dict) -> Context:
    """profiles: (act, init) -> one delta_norm profile per seed (hidden layers, input side first)."""
    rows, records = [], {}
    for (act, init), per_seed in profiles.items():
        for seed, deltas in enumerate(per_seed):
            run = f"{act}-{init}-{seed}"
            rows.append({"act": act, "init": init, "seed": seed, "ratio_init": deltas[0] / deltas[-1], "run": run})
            records[run] = [record(delta_norm=deltas)]
    seeds = len(next(iter(profiles.values())))
    grid = {"act": ["identity", "tanh"], "init": ["orthogonal", "xavier_normal"], "seed": list(range(seeds))}
    return context(grid, rows, records)


SAME, WANDERING = [[1.0, 1.0, 1.0]] * 3, [[2.0, 1.5, 1.0], [0.5, 0.8, 1.0], [1.0, 1.2, 1.0]]
ISOMETRY = {("identity", "orthogonal"): SAME, ("identity", "xavier_normal"): WANDERING,
            ("tanh", "orthogonal"): [[0.5, 0.7, 1.0]] * 3, ("tanh", "xavier_normal"): WANDERING}  # fmt: skip


@pytest.mark.parametrize(
    "profiles, status",
    [
        (ISOMETRY, HOLDS),
        ({**ISOMETRY, ("tanh", "xavier_normal"): [[0.5, 0.7, 1.0]] * 3}, PARTLY),
        ({**ISOMETRY, ("identity", "orthogonal"): WANDERING, ("tanh", "orthogonal"): WANDERING,
          ("identity", "xavier_normal"): SAME, ("tanh", "xavier_normal"): SAME}, NOT),
    ],
)  # fmt: skip
def test_orthogonal_checks_exact_isometry_and_which_profiles_stay_the_same(profiles, status):
    check = orthogonal.check(_orthogonal(profiles))
    assert check.status == status, check.markdown()
    assert not math.isnan(orthogonal.profile_spread(_orthogonal(profiles), "tanh", "orthogonal"))


def test_orthogonal_spread_within_noise_when_one_seed_makes_it_and_the_bar_flips_it(monkeypatch):
    # Gaussian tanh: two seeds alike, the third apart: leaving it out takes the spread to 0, below the bar
    lonely = {**ISOMETRY, ("tanh", "xavier_normal"): [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.2, 1.1, 1.0]]}
    assert statuses(orthogonal.check(_orthogonal(lonely)))[2] == NOISE
    monkeypatch.setattr(orthogonal, "SAME_BELOW", 1.0)  # every spread here is below a whole decade
    assert statuses(orthogonal.check(_orthogonal(ISOMETRY)))[1:] == [HOLDS, NOT]


def test_the_report_states_one_theory_band_for_mean_field_agreement():
    assert common.THEORY_WITHIN == exploding.THEORY_WITHIN == rescue.THEORY_WITHIN == 2.0


# ---- finding 10 -----------------------------------------------------------------------------------------------
# Rows as the full grid commits them (isometry.export): tanh's critical sigma_w^2 at sigma_b^2 = 1e-4 and ReLU's 2,
# each also at the other's; width 8, 2 examples; the smoothed loss every 10 steps over 500 steps.
TANH_CRITICAL, STEPS = 1.04213**2, list(range(20, 480, 10))  # centred means of 5 records logged every 10 steps
CRITICAL = {("tanh", "orthogonal", TANH_CRITICAL), ("tanh", "Gaussian", TANH_CRITICAL), ("relu", "orthogonal", 2.0),
            ("relu", "Gaussian", 2.0)}  # fmt: skip
SPECTRA = {("tanh", "orthogonal", TANH_CRITICAL): (1.0, 0), ("tanh", "orthogonal", 2.0): (6.0, 0),
           ("tanh", "Gaussian", TANH_CRITICAL): (20.0, 0), ("tanh", "Gaussian", 2.0): (25.0, 0),
           ("relu", "orthogonal", 2.0): (9.0, 4), ("relu", "Gaussian", 2.0): (13.0, 4),
           ("relu", "orthogonal", TANH_CRITICAL): (9.0, 4), ("relu", "Gaussian", TANH_CRITICAL): (13.0, 4)}  # fmt: skip


def loss_curve(drop_step: float) -> list[float]:
    """At chance (2.3) until ``drop_step``, then 1.4 (never: flat at chance): every net that trains ends at 1.4,
    the race's level, and reaches it at ``drop_step``."""
    return [2.3 if s < drop_step else 1.4 for s in STEPS]


def iso_rows(spectra=SPECTRA, drops=None, reference_drop=30, other_drop=450) -> list[dict]:
    """Three seeds at depths 32 and 128; critical nets other than orthogonal tanh leave chance at ``other_drop``
    (451 / 31: 14.5 times later) unless ``drops`` ((config, seed) -> step; math.inf: never) says otherwise."""
    rows = []
    for (act, kind, sigma_w2), (decades, zeros) in spectra.items():
        for depth in (32, 128):
            for seed in (0, 1, 2):
                reference = (act, kind) == ("tanh", "orthogonal") and sigma_w2 == TANH_CRITICAL
                drop = reference_drop if reference else (drops or {}).get(((act, kind, sigma_w2), seed), other_drop)
                losses = loss_curve(drop) if (act, kind, sigma_w2) in CRITICAL else [2.3] * len(STEPS)
                init = "orthogonal" if kind == "orthogonal" else "he_normal"
                rows.append({"act": act, "init": f"{init}:gain={sigma_w2**0.5}", "kind": kind, "sigma_w2": sigma_w2,
                             "depth": depth, "seed": seed, "lr": 0.002, "status": "completed",
                             "train_loss": losses[-1], "test_accuracy": 0.3, "steps_done": 500, "rank": [8 - zeros] * 2,
                             "zeros": [zeros] * 2, "unresolved": [0, 0], "width": 8, "decades": decades, "median": 0.3,
                             "log10_mean_s2": -0.5, "relative_var": 1.0, "theory_mean_s2": 0.3,
                             "theory_relative_var": 1.0, "steps": STEPS, "losses": losses})  # fmt: skip
    return rows


def iso_parts(rows, reproduced=(16, 16)) -> Check:
    return Check(isometry.claim_parts(rows, 1e-4, math.log(10), reproduced)[0])


def test_isometry_holds_when_spectra_bands_rank_reproduction_and_the_race_all_agree():
    check = iso_parts(iso_rows())
    assert check.status == HOLDS, check.markdown()
    assert len(check.parts) == 8 and all(p.margin is not None for p in check.parts if "reproduce" not in p.says)
    text = check.markdown()  # the level 1.4: orthogonal tanh at step 30, the others at 450: x451/31
    assert "tanh Gaussian at depth 32: median ×14.5 (seeds: ×14.5 to 1.4, ×14.5 to 1.4, ×14.5 to 1.4)" in text
    assert "exact zeros 50%..50%" in text


def test_isometry_does_not_hold_when_every_band_rank_and_race_is_the_other_way():
    flipped = {("tanh", "orthogonal", TANH_CRITICAL): (3.0, 1), ("tanh", "orthogonal", 2.0): (1.0, 0),
               ("tanh", "Gaussian", TANH_CRITICAL): (3.0, 0), ("tanh", "Gaussian", 2.0): (3.0, 0),
               ("relu", "orthogonal", 2.0): (1.0, 0), ("relu", "Gaussian", 2.0): (1.5, 0),
               ("relu", "orthogonal", TANH_CRITICAL): (1.0, 0),
               ("relu", "Gaussian", TANH_CRITICAL): (1.0, 0)}  # fmt: skip
    check = iso_parts(iso_rows(flipped, reference_drop=450, other_drop=40), reproduced=(3, 16))
    assert check.status == NOT, check.markdown()
    assert [p.status for p in check.parts] == [NOT] * 8


def test_isometry_without_the_committed_race_says_the_speed_up_is_not_judged_and_its_status_says_so():
    check = Check(isometry.claim_parts(iso_rows(), 1e-4, math.log(10))[0])  # no committed table: no reproduced
    assert [p.status for p in check.parts] == [HOLDS] * 4 + ["not judged"], check.markdown()
    assert check.status == "holds, 1 part not judged" and "orders of magnitude" in check.parts[-1].says
    assert Check([check.parts[-1]]).status == "not judged"
    failing = Part("x", False, "n")
    assert Check([failing, check.parts[-1], check.parts[-1]]).status == "does not hold, 2 parts not judged"


def test_isometry_holds_partly_when_isometry_is_faster_but_not_by_orders_of_magnitude():
    check = iso_parts(iso_rows(other_drop=100))  # 101 / 31: x3.3
    assert check.status == PARTLY, check.markdown()
    assert [p.status for p in check.parts][-3:] == [HOLDS, HOLDS, NOT]


def test_isometry_says_within_noise_when_the_seeds_disagree_about_the_speed_up():
    gaussian = ("tanh", "Gaussian", TANH_CRITICAL)
    drops = {(gaussian, 0): 40, (gaussian, 1): 120, (gaussian, 2): 200}  # x41/61, x121/61, x201/61: median x2
    part = iso_parts(iso_rows(drops=drops, reference_drop=60)).parts[5]
    assert part.says.startswith("isometry trains faster") and part.status == "within noise", part
    assert part.holds and part.margin.value > 0 and part.margin.spread >= part.margin.value


def test_isometry_counts_a_net_that_never_trains_as_a_lower_bound_and_says_so():
    relu = ("relu", "Gaussian", 2.0)
    rows = iso_rows(drops={(relu, seed): math.inf for seed in (0, 1, 2)})
    parts, races = isometry.claim_parts(rows, 1e-4, math.log(10), (16, 16))
    # it never reaches the bar 0.9 ln 10 = 2.07: a lower bound, all its 500 steps against orthogonal tanh's 30
    found = races.speedups(("relu", "Gaussian", 2.0), 128)[0]
    assert found == (pytest.approx(math.log10(501 / 31)), "≥", pytest.approx(0.9 * math.log(10)))
    assert "relu Gaussian at depth 128: median ×16.2 (seeds: ≥×16.2 to 2.07" in parts[6].numbers
    assert parts[6].status == HOLDS
    table = isometry_training.training_table(rows, isometry.configs(rows, 1e-4), races, math.log(10))
    assert "0 of 3: did not train | never, never, never |" in table and "| 3 of 3 | 30, 30, 30 |" in table
    # orthogonal tanh already below the level at the first centred step: it may have got there sooner, so >=
    early = isometry.claim_parts(iso_rows(reference_drop=20), 1e-4, math.log(10), (16, 16))[1]
    assert early.speedups(("tanh", "Gaussian", round(TANH_CRITICAL, 6)), 32)[0][1] == "≥"


def test_isometry_picks_each_nets_learning_rate_by_its_median_final_loss_over_seeds():
    rows = iso_rows()
    worse = [{**r, "lr": 0.02, "train_loss": r["train_loss"] + 0.1} for r in rows]
    assert isometry_training.best_lr(rows + worse, ("tanh", "orthogonal", round(TANH_CRITICAL, 6)), 32) == 0.002
    diverged = [{**r, "lr": 0.0005, "status": "diverged", "train_loss": None} for r in rows]
    assert isometry_training.best_lr(rows + diverged, ("relu", "Gaussian", 2.0), 128) == 0.002


def test_isometry_variance_of_s2_counts_exact_zeros_as_zeros():
    # two examples of width 2, each with one s = 1 and one exact zero: s^2 = 1, 1, 0, 0 -> Var / mean^2 = 1, ReLU's
    entry = {"log10_singular_values": [0.0, 0.0], "width": 2, "examples": 2}
    assert isometry.relative_variance(entry) == pytest.approx(1.0)
    assert isometry.relative_variance({**entry, "log10_singular_values": [-400.0, -400.0]}) == pytest.approx(1.0)
    assert math.isnan(isometry.relative_variance({**entry, "log10_singular_values": []}))


def test_isometry_expects_relus_rank_at_the_fewest_active_units_over_its_layers():
    assert isometry.expected_relu_rank(8, 2) == pytest.approx(4.0)  # one layer of D: E[Binomial(8, 1/2)]
    # two layers, width 2: min(B1, B2) is 2 with probability 1/16, 1 with 9/16 - 1/16: mean 10/16
    assert isometry.expected_relu_rank(2, 3) == pytest.approx(10 / 16)
    assert 52 < isometry.expected_relu_rank(128, 32) < 53 and 49 < isometry.expected_relu_rank(128, 128) < 50


def test_isometry_smooths_the_minibatch_loss_centred_so_a_fast_drop_is_not_delayed():
    records = [{"step": 10 * i, "loss": 2.3 if i < 5 else 1.3} for i in range(10)]  # drops at step 50
    steps, losses = isometry_training.smoothed_losses(records)
    assert list(steps) == [20, 30, 40, 50, 60, 70] and losses[3] == pytest.approx((2 * 2.3 + 3 * 1.3) / 5)
    assert isometry_training.steps_to(steps, losses, 1.8) == 50.0  # the centred mean crosses the midpoint there
    assert isometry_training.steps_to(steps, losses, 1.0) == math.inf
    short_steps, short = isometry_training.smoothed_losses(records[:4])  # 4 records: a centred window of 3
    assert list(short_steps) == [10, 20] and short[0] == pytest.approx(2.3)
