"""Finding 8 on synthetic runs (no training): "trained" is relative to the depth-10 net of the same sigma_w^2 and
seed; a cell trained where the median over its seeds did; the prediction is depth < 6 xi_c; the theory is compared
with the best rules on depth alone and on sigma_w^2 alone; the report's reruns are checked against the committed
table; each status of the check is reachable and moving the criterion flips it."""

import math

import pytest

from tinygrad_act.findings import edge_of_chaos as eoc

CHANCE = 0.1
ORDERED, CRITICAL, CHAOTIC = "he_normal:gain=1.0000", "he_normal:gain=1.3266", "he_normal:gain=2.0000"
SIX_XI = {ORDERED: 21.0, CRITICAL: 5000.0, CHAOTIC: 42.0}  # 6 xi_c of each, for the synthetic rows' measured sigma


def run(init, depth, accuracy, seed=0, status="completed", factor=1.0):
    sigma = eoc.nominal_sigma_w2(init)
    return {"init": init, "depth": depth, "seed": seed, "sigma_w2": sigma, "train_accuracy": accuracy,
            "status": status, "ratio_init": 1.0, "ratio_final": 1e-5, "per_layer_factor_init": factor,
            "predicted_per_layer_factor": 1.0}  # fmt: skip


@pytest.fixture(autouse=True)
def fixed_depth_scale(monkeypatch):
    """6 xi_c by init (the synthetic sigma_w^2 are the nominal ones), instead of solving the correlation map."""
    by_sigma = {round(eoc.nominal_sigma_w2(i), 6): v for i, v in SIX_XI.items()}
    monkeypatch.setattr(eoc, "six_xi_c", lambda act, sigma, sigma_b2: by_sigma[round(sigma, 6)])


def judge(rows, **kwargs):
    return eoc.judge(rows, "tanh", 0.05, CHANCE, **kwargs)


def theory_like(seeds=(0,), deep=(40, 70, 100)):
    """Every cell as 6 xi_c says: shallow ones and the critical ones train, the others stay at chance."""
    rows = []
    for s in seeds:
        for init in SIX_XI:
            rows.append(run(init, 10, 0.9, s))
            rows += [run(init, d, 0.85 if d < SIX_XI[init] else 0.1, s) for d in (20, *deep)]
    return rows


def test_trained_is_half_of_what_the_depth_10_net_of_the_same_sigma_and_seed_learned_above_chance():
    rows = [
        run(ORDERED, 10, 0.9),
        run(ORDERED, 40, 0.5),
        run(ORDERED, 70, 0.49),
        run(ORDERED, 100, 0.2, status="diverged"),
    ]
    gained = eoc.progress(rows, CHANCE)
    assert gained[ORDERED, 10, 0] == 1.0 and gained[ORDERED, 40, 0] == pytest.approx(0.5)
    assert gained[ORDERED, 100, 0] == -math.inf  # diverged: never trained
    cells = judge(rows)
    assert [c["trained"] for c in cells] == [True, True, False, False]
    assert [c["reference"] for c in cells] == [True, False, False, False]
    assert [c["predicted"] for c in cells] == [True, False, False, False]  # 6 xi_c = 21
    assert cells[1]["reason"] == "trained although depth >= 6 xi_c, depth / 6 xi_c = 1.9: near the boundary"
    assert judge(rows, trained_at=0.4)[2]["trained"] is True
    no_reference = eoc.progress([run(ORDERED, 10, 0.1), run(ORDERED, 40, 0.5)], CHANCE)
    assert math.isnan(no_reference[ORDERED, 40, 0])  # the shallow net learned nothing: no yardstick


def test_a_cell_is_the_median_over_its_seeds_and_noisy_where_they_disagree():
    rows = [run(CRITICAL, 10, 0.9, s) for s in (0, 1)] + [run(CRITICAL, 70, 0.8, 0), run(CRITICAL, 70, 0.3, 1)]
    cell = judge(rows)[1]
    assert cell["runs"] == 2 and cell["noisy"] and cell["accuracy"] == pytest.approx(0.55)
    assert cell["trained"] is True  # median progress (0.875 + 0.25) / 2 = 0.56
    assert judge(rows, seeds=[1])[1]["trained"] is False and not judge(rows, seeds=[1])[1]["noisy"]


def test_the_baselines_are_the_best_rules_on_depth_alone_and_on_sigma_alone():
    cells = judge(theory_like())
    counts = eoc.agreements(cells)
    # judged: 3 inits x 4 depths, the theory right in each; depth alone: all train at 20, 2 of 3 at 40, 1 of 3
    # at 70 and 100; sigma_w^2 alone: the ordered net trains at 1 of 4 depths, the critical at 4, the chaotic at 2
    assert counts == {"theory": 12, "depth": 3 + 2 + 2 + 2, "sigma": 3 + 4 + 2, "cells": 12}
    assert eoc.best_depth_rule(cells) == "trained at depth 20, 40"
    assert eoc.deepest_trained(cells) == {1.0: 20, 1.3266**2: 100, 4.0: 40}


def test_the_check_holds_holds_partly_does_not_hold_or_is_within_noise():
    check = eoc.check_cells(lambda s: judge(theory_like(), seeds=s), [0], critical=1.76)
    assert check.status == "holds", check.markdown()
    assert "6 xi_c right in 12 of 12 judged cells" in check.markdown() and "100 at sigma_w^2 = 1.76" in check.markdown()

    depth_only = [r | {"train_accuracy": 0.9 if r["depth"] <= 20 else 0.1} for r in theory_like()]
    check = eoc.check_cells(lambda s: judge(depth_only, seeds=s), [0], critical=1.76)
    assert [p.status for p in check.parts] == ["holds", "does not hold", "does not hold", "does not hold", "holds"]
    assert check.status == "holds partly"  # nothing trains beyond 6 xi_c, but depth alone says as much

    nothing = [r | {"train_accuracy": 0.9, "per_layer_factor_init": 2.0} for r in theory_like()]
    assert eoc.check_cells(lambda s: judge(nothing, seeds=s), [0], critical=1.76).status == "does not hold"

    # seed 1: the deep critical nets stay stuck, so the theory only ties with depth alone there
    two = theory_like(seeds=(0,)) + [
        r | {"train_accuracy": 0.1} if r["init"] == CRITICAL and r["depth"] >= 40 else r
        for r in theory_like(seeds=(1,))
    ]
    check = eoc.check_cells(lambda s: judge(two, seeds=s), [0, 1], critical=1.76)
    assert [p.status for p in check.parts][:4] == ["holds"] + ["within noise"] * 3, check.markdown()


def test_moving_the_trained_criterion_flips_the_check(monkeypatch):
    rows = theory_like()
    for r in rows:  # the deep critical nets learn 40% of the shallow net's gain above chance
        if r["init"] == CRITICAL and r["depth"] >= 40:
            r["train_accuracy"] = CHANCE + 0.4 * 0.8
    assert eoc.check_cells(lambda s: judge(rows, seeds=s), [0], critical=1.76).status == "holds partly"
    monkeypatch.setattr(eoc, "TRAINED_FRACTION", 0.3)
    assert eoc.check_cells(lambda s: eoc.judge(rows, "tanh", 0.05, CHANCE, s), [0], critical=1.76).status == "holds"


def test_failures_text_lists_only_the_wrong_judged_cells_with_their_numbers():
    rows = theory_like()
    assert eoc.failures_text(judge(rows), 64) == "The boundary is right in every judged cell."
    rows[-1]["train_accuracy"] = 0.5  # chaotic depth 100 trained although 6 xi_c = 42
    text = eoc.failures_text(judge(rows), 64)
    assert text.count("\n- ") == 1 and "depth 100: 6 xi_c = 42, train accuracy 50.0%" in text
    assert "trained although depth >= 6 xi_c, depth / 6 xi_c = 2.4: far from the boundary" in text
