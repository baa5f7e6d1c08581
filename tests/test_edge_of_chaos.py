"""Finding 8's criterion, agreement and check on synthetic grid cells (no runs): trained = accuracy at least
the threshold and not diverged; the prediction is depth < 6 xi_c; each disagreement names its reason."""

import math

import pytest

from tinygrad_act.findings import edge_of_chaos as eoc


def cell(nominal, depth, accuracy, six_xi_c, diverged=False, factor=1.0, factor_theory=1.0):
    return {
        "nominal": nominal,
        "sigma_w2": nominal,
        "depth": depth,
        "accuracy": accuracy,
        "diverged": diverged,
        "six_xi_c": six_xi_c,
        "factor": factor,
        "factor_theory": factor_theory,
    }


def test_judge_marks_trained_predicted_agreement_and_the_reason_of_each_failure():
    judged = eoc.judge(
        [
            cell(1.0, 10, 0.80, 21.0),  # shallow, trained: agrees
            cell(1.0, 100, 0.10, 21.0),  # deep, stuck: agrees
            cell(1.0, 30, 0.40, 21.0),  # trained beyond 6 xi_c, depth / 6 xi_c = 1.43: near the boundary
            cell(1.76, 100, 0.10, 5000.0),  # stuck far inside: far from the boundary
            cell(4.0, 10, math.nan, 42.0, diverged=True),  # diverged
            cell(4.0, 20, 0.25, 42.0),  # exactly the threshold: trained
        ]
    )
    assert [c["trained"] for c in judged] == [True, False, True, False, False, True]
    assert [c["predicted"] for c in judged] == [True, False, False, True, True, True]
    assert [c["agrees"] for c in judged] == [True, True, False, False, False, True]
    assert judged[2]["reason"] == "trained although depth >= 6 xi_c, depth / 6 xi_c = 1.4: near the boundary"
    assert judged[3]["reason"] == "stuck although depth < 6 xi_c, depth / 6 xi_c = 0.02: far from the boundary"
    assert judged[4]["reason"] == "diverged (far from the boundary)"
    assert eoc.agreement_fraction(judged) == pytest.approx(3 / 6)
    assert math.isnan(eoc.agreement_fraction([]))
    assert eoc.judge([cell(1.0, 10, 0.3, 21.0)], trained_at=0.5)[0]["trained"] is False


def test_failures_text_lists_only_the_wrong_cells_with_their_numbers():
    judged = eoc.judge([cell(1.0, 10, 0.8, 21.0), cell(1.76, 100, 0.1, 5000.0)])
    text = eoc.failures_text(judged)
    assert "depth 10:" not in text and "depth 100: 6 xi_c = 5e+03, train accuracy 10.0%" in text
    assert eoc.failures_text(eoc.judge([cell(1.0, 10, 0.8, 21.0)])) == "The boundary is right in every cell."
    lost, kept = cell(1.76, 70, 0.1, 5000.0), cell(1.76, 100, 0.1, 5000.0)
    lost.update(ratio_init=1.0, ratio_final=1e-5)  # healthy at step 0, vanished by the end
    kept.update(ratio_init=1e-3, ratio_final=1e-5)  # already vanishing at step 0
    text = eoc.failures_text(eoc.judge([lost, kept]))
    assert "r 1 at step 0 -> 1.0e-05 at the end" in text
    assert "Of the 2 cells stuck although predicted trainable, 1 started healthy" in text


def grid(accuracy_at, six_xi_c=lambda s: 30.0, factor=1.0):
    return eoc.judge(
        [cell(s, d, accuracy_at(s, d), six_xi_c(s), factor=factor) for s in (1.0, 1.76, 4.0) for d in (10, 40, 100)]
    )


def test_the_check_holds_holds_partly_or_does_not_hold_as_its_parts_say():
    theory_like = grid(lambda s, d: 0.9 if d < (1e4 if s == 1.76 else 30) else 0.1, lambda s: 1e4 if s == 1.76 else 30)
    check = eoc.check_cells(theory_like, critical=1.76)
    assert check.status == "holds", check.markdown()
    assert "9 of 9 cells" in check.markdown() and "100 at sigma_w^2 = 1.76" in check.markdown()

    shallow_only = grid(lambda s, d: 0.9 if d == 10 else 0.1, lambda s: 1e4)  # right in 3 of 9
    check = eoc.check_cells(shallow_only, critical=1.76)
    assert [p.holds for p in check.parts] == [False, False, True] and check.status == "holds partly"

    nothing = eoc.check_cells(grid(lambda s, d: 0.1, lambda s: 1e4, factor=2.0), critical=1.76)
    assert nothing.status == "does not hold", nothing.markdown()
