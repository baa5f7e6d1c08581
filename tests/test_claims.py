"""Each finding's claim check on small synthetic rows and records, written so that it must hold, hold partly,
and not hold: the expected status is decided here by hand from the numbers, independently of the check."""

import math
from pathlib import Path

import pytest

from tinygrad_act import findings
from tinygrad_act.findings import (
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
from tinygrad_act.findings.common import Check, Context, Part
from tinygrad_act.lab.sweep import grid as sweeps

HOLDS, PARTLY, NOT = "holds", "holds partly", "does not hold"


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


def test_a_check_adds_its_parts_up_and_prints_each_with_its_numbers():
    check = Check([Part("a", True, "x = 1"), Part("b", False, "y = 2")])
    assert check.status == PARTLY
    assert Check([Part("a", True, "")]).status == HOLDS and Check([Part("a", False, "")]).status == NOT
    assert check.markdown().splitlines() == [
        "**Check, computed from the runs: holds partly.**",
        "",
        "- a: **holds** (x = 1)",
        "- b: **does not hold** (y = 2)",
    ]


def test_every_finding_but_the_edge_of_chaos_checks_its_claim():
    assert {f.name for f in findings.FINDINGS if f.check is None} <= {"edge_of_chaos"}


# ---- finding 1 ------------------------------------------------------------------------------------------------
def _depth_rows(ratios: dict, depths=(5, 50)) -> list[dict]:
    """Per activation, r at each depth from r(depth); one seed; step-0 runs that completed."""
    return [
        {"act": act, "depth": d, "seed": 0, "ratio_init": f(d), "per_layer_factor_init": f(d) ** (1 / (d - 1)),
         "status": "completed", "verdict_final": "healthy"}
        for act, f in ratios.items() for d in depths
    ]  # fmt: skip


@pytest.mark.parametrize(
    "ratios, status",
    [
        ({"sigmoid": lambda d: 0.2 ** (d - 1), "tanh": lambda d: 0.5, "relu": lambda d: 1.0}, HOLDS),
        ({"sigmoid": lambda d: 0.2 ** (d - 1), "swish": lambda d: 1.2 ** (d - 1)}, PARTLY),  # 1.2^49 = 7.6e3
        ({"sigmoid": lambda d: 0.5, "tanh": lambda d: 0.1, "relu": lambda d: 1e-3}, NOT),
    ],
)
def test_vanishing_depth_judges_each_activation_and_depth_by_the_verdict_rule(ratios, status):
    rows = _depth_rows(ratios)
    check = vanishing_depth.check(context({"act": list(ratios), "depth": [5, 50], "seed": [0]}, rows))
    assert check.status == status, check.markdown()
    if "swish" in ratios:
        assert "(exploding) at depth 50" in check.markdown()


# ---- finding 2 ------------------------------------------------------------------------------------------------
def _glorot_rows(accuracy: dict, ratio: dict) -> list[dict]:
    return [
        {"act": a, "init": i, "seed": 0, "test_accuracy": accuracy[a, i], "ratio_init": ratio[a, i]}
        for a, i in accuracy
    ]


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
# sigmoid learns best, the standard init's r exceeds 1, normalized r is far from 1, softsign gains more than tanh
BAD_ACC = {**GOOD_ACC, ("sigmoid", "standard"): 0.9, ("tanh", "xavier_uniform"): 0.55}
BAD_R = {k: (2.0 if k[1] == "standard" else 0.1) for k in GOOD_R}


@pytest.mark.parametrize(
    "accuracy, ratio, status", [(GOOD_ACC, GOOD_R, HOLDS), (GOOD_ACC, BAD_R, PARTLY), (BAD_ACC, BAD_R, NOT)]
)
def test_glorot_bengio_checks_gradients_the_worst_net_and_whom_the_normalized_init_helps_most(accuracy, ratio, status):
    grid = {"act": ["sigmoid", "tanh", "softsign"], "init": ["standard", "xavier_uniform"], "seed": [0]}
    check = glorot_bengio.check(context(grid, _glorot_rows(accuracy, ratio)))
    assert check.status == status, check.markdown()
    assert len(check.parts) == 4


def test_glorot_bengio_says_plain_sgd_when_momentum_is_zero():
    ctx = context({"act": ["tanh"]}, [], fixed={"momentum": 0.0})
    assert glorot_bengio._optimizer(ctx) == "plain SGD (momentum 0)"
    assert glorot_bengio._optimizer(context({"act": ["tanh"]}, [])) == "SGD with momentum 0.9"


# ---- finding 3 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "xavier, he, status",
    [
        ((0.1, 0.10), (0.5, 0.20), HOLDS),  # (test accuracy, r); depth 3: theory's gap 2^(2/2) = 2
        ((0.1, 0.10), (0.5, 1.00), PARTLY),  # a gap of 10
        ((0.5, 0.10), (0.1, 1.00), NOT),
    ],
)
def test_he_2015_checks_stall_converge_and_the_gap(xavier, he, status):
    rows = [
        {"init": init, "seed": 0, "test_accuracy": acc, "ratio_init": r, "final_loss": 1.0}
        for init, (acc, r) in (("xavier_normal", xavier), ("he_normal", he))
    ]
    ctx = context({"init": ["xavier_normal", "he_normal"], "seed": [0]}, rows, fixed={"depth": 3})
    assert ctx.chance() == pytest.approx(0.1)  # MNIST-1D: 10 classes
    check = he_2015.check(ctx)
    assert check.status == status, check.markdown()


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
    return context({"act": acts, "lr": sorted({lr for _, lr, _ in runs}), "seed": [0]}, rows, records)


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


def test_dying_relu_shows_no_dead_fraction_at_the_end_for_a_diverged_run():
    table = dying_relu.dead_table(_dying(ALIVE))
    assert "| leaky_relu | 0.2 | 0.0% | - | 50.0% | diverged |" in table
    assert "| relu | 0.2 | 8.0% | 50.0% | 50.0% | completed |" in table


# ---- finding 5 ------------------------------------------------------------------------------------------------
def _exploding_rows(r_large: float, clipped_status: str) -> list[dict]:
    base = {"act": "relu", "final_loss": 1.0, "test_accuracy": 0.3}
    return [
        {**base, "init": "xavier_normal", "clip": 0.0, "ratio_init": 1e-3, "predicted_ratio": 1e-3,
         "predicted_per_layer_factor": 0.7, "status": "completed"},
        {**base, "init": "xavier_normal:gain=2", "clip": 0.0, "ratio_init": r_large, "predicted_ratio": 700.0,
         "predicted_per_layer_factor": 1.41, "status": "diverged"},
        {**base, "init": "xavier_normal:gain=2", "clip": 1.0, "ratio_init": r_large, "predicted_ratio": 700.0,
         "predicted_per_layer_factor": 1.41, "status": clipped_status},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "r_large, clipped, status", [(720.0, "completed", HOLDS), (5.0, "completed", PARTLY), (0.5, "diverged", NOT)]
)
def test_exploding_checks_growth_against_theory_and_that_clipping_keeps_training_finite(r_large, clipped, status):
    grid = {"act": ["relu"], "init": ["xavier_normal", "xavier_normal:gain=2"], "clip": [0.0, 1.0]}
    check = exploding.check(context(grid, _exploding_rows(r_large, clipped)))
    assert check.status == status, check.markdown()


# ---- finding 6 ------------------------------------------------------------------------------------------------
def _rescue_rows(plain: float, residual: float, layer: float) -> list[dict]:
    from tinygrad_act.lab.stats import verdict

    def row(res, norm, r):
        return {"act": "sigmoid", "residual": res, "norm": norm, "ratio_init": r, "verdict": verdict(r),
                "ratio_final": r, "verdict_final": verdict(r), "per_layer_factor_init": r ** 0.5,
                "status": "completed", "test_accuracy": 0.3}  # fmt: skip

    return [row(False, "none", plain), row(False, "layer", layer), row(True, "none", residual), row(True, "layer", 1)]


@pytest.mark.parametrize(
    "plain, residual, layer, status",
    [(1e-20, 2.0, 1.0, HOLDS), (1e-20, 2.0, 1e-20, PARTLY), (1.0, 1e-5, 1e5, NOT)],
)
def test_rescue_checks_that_plain_nets_vanish_and_each_rescue_is_healthy(plain, residual, layer, status):
    grid = {"act": ["sigmoid"], "residual": [False, True], "norm": ["none", "layer"]}
    check = rescue.check(context(grid, _rescue_rows(plain, residual, layer)))
    assert check.status == status, check.markdown()


# ---- finding 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "depth, mean, std, status",
    [(32, 0.02, 1.05, HOLDS), (32, 0.02, 2.0, PARTLY), (32, 0.5, 2.0, NOT), (10, 0.0, 1.0, NOT)],
)
def test_selu_checks_mean_and_variance_at_every_layer_of_a_net_of_30_or_more(depth, mean, std, status):
    means = [mean * (-1) ** i for i in range(depth)]  # alternating signs: the check must take |mean|
    rows = [{"act": "selu", "init": "lecun_normal", "run": "s"}]
    ctx = context(
        {"act": ["selu"], "init": ["lecun_normal"]}, rows, {"s": [record(act_mean=means, act_std=[std] * depth)]}
    )
    check = selu.check(ctx)
    assert check.status == status, check.markdown()


# ---- finding 9 ------------------------------------------------------------------------------------------------
def _orthogonal(profiles: dict) -> Context:
    """profiles: (act, init) -> one delta_norm profile per seed (hidden layers, input side first)."""
    rows, records = [], {}
    for (act, init), per_seed in profiles.items():
        for seed, deltas in enumerate(per_seed):
            run = f"{act}-{init}-{seed}"
            rows.append({"act": act, "init": init, "seed": seed, "ratio_init": deltas[0] / deltas[-1], "run": run})
            records[run] = [record(delta_norm=deltas)]
    grid = {"act": ["identity", "tanh"], "init": ["orthogonal", "xavier_normal"], "seed": [0, 1]}
    return context(grid, rows, records)


SAME, WANDERING = [[1.0, 1.0, 1.0]] * 2, [[2.0, 1.5, 1.0], [0.5, 0.8, 1.0]]
ISOMETRY = {("identity", "orthogonal"): SAME, ("identity", "xavier_normal"): WANDERING,
            ("tanh", "orthogonal"): [[0.5, 0.7, 1.0]] * 2, ("tanh", "xavier_normal"): WANDERING}  # fmt: skip


@pytest.mark.parametrize(
    "profiles, status",
    [
        (ISOMETRY, HOLDS),
        ({**ISOMETRY, ("tanh", "xavier_normal"): [[0.5, 0.7, 1.0]] * 2}, PARTLY),
        ({**ISOMETRY, ("identity", "orthogonal"): WANDERING, ("tanh", "orthogonal"): WANDERING,
          ("identity", "xavier_normal"): SAME, ("tanh", "xavier_normal"): SAME}, NOT),
    ],
)  # fmt: skip
def test_orthogonal_checks_exact_isometry_and_which_profiles_stay_the_same(profiles, status):
    check = orthogonal.check(_orthogonal(profiles))
    assert check.status == status, check.markdown()
    assert not math.isnan(orthogonal.profile_spread(_orthogonal(profiles), "tanh", "orthogonal"))


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
