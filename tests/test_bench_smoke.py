"""The benchmark suite runs end to end at a tiny size and returns well-formed results (timing is never asserted)."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import FINISHED_RUN  # noqa: E402

from bench import memory, recurrent, run, scalar_mlp, tensor_mlp  # noqa: E402
from bench.common import max_relative_difference  # noqa: E402
from tinygrad_act.lab import data  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MICROGRAD = importlib.util.find_spec("micrograd") is not None


def tiny(**overrides):
    return run.Options(**{"size": "tiny", "torch": HAS_TORCH, **overrides})


def test_runner_registers_every_section_and_lists_them(capsys):
    assert {"scalar", "tensor", "recurrent", "memory"} <= set(run.SECTIONS)
    assert run.main(["--list"]) == 0
    assert "scalar" in capsys.readouterr().out


def test_scalar_mlp_matches_micrograd_loss_and_gradients():
    problem = scalar_mlp.make_problem(3, (4, 4, 1), n_samples=3, seed=1)
    loss_ours, grads_ours = scalar_mlp.loss_and_gradients("tinygrad_act", problem)
    loss_theirs, grads_theirs = scalar_mlp.loss_and_gradients("micrograd", problem)
    assert loss_ours == pytest.approx(loss_theirs, rel=1e-12)
    assert grads_ours == pytest.approx(grads_theirs, rel=1e-9, abs=1e-12)


def test_scalar_section_reports_time_per_sample_for_each_engine():
    result = scalar_mlp.run(tiny())
    measured = result["gc enabled (default)"]
    engines = ["tinygrad_act"] + ["micrograd"] * HAS_MICROGRAD
    for name in engines:
        assert measured[name]["us_per_sample"] > 0 and len(measured[name]["seconds_per_iteration"]) >= 1
    assert ("speedup_vs_micrograd" in measured) == HAS_MICROGRAD


def test_numpy_floor_and_torch_gradients_equal_tinygrad_act_in_float64():
    problem = tensor_mlp.make_problem(3, 8, 5, seed=2)
    torch = pytest.importorskip("torch") if HAS_TORCH else None
    differences = tensor_mlp.check_gradients(problem, np.float64, torch)
    assert set(differences) == {"captured", "numpy", "numpy exact"} | ({"torch"} if HAS_TORCH else set())
    for diff in differences.values():
        assert diff["gradients"] < 1e-10 and diff["loss"] < 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_floor_keeps_the_gradients_that_one_minus_y_squared_loses(dtype):
    """Saturated layers (|x| ~ 60, where 1 - y^2 rounds to 0 but tanh' does not): the exact floor agrees with
    the captured step, zeros included; the 1 - y^2 floor has gradient entries that are exactly 0 there."""
    problem = tensor_mlp.make_problem(3, 8, 5, seed=3)
    problem["weights"] = [w * 60 for w in problem["weights"]]
    engines = tensor_mlp.make_engines(problem, dtype)
    for engine in engines:
        engine.step(0.0)
        engine.step(0.0)  # the captured engine replays here
    grads = {engine.name: engine.gradients() for engine in engines}
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert max_relative_difference(grads["numpy exact"], grads["captured"]) < tolerance

    def zeros(name):
        return sum(int((g == 0).sum()) for g in grads[name])

    assert zeros("numpy exact") == zeros("captured") < zeros("numpy")


def test_tensor_section_reports_every_dtype_and_ratio():
    result = tensor_mlp.run(tiny())
    assert [entry["dtype"] for entry in result["configs"]] == ["float32", "float64"]
    for entry in result["configs"]:
        assert entry["tinygrad_act"]["ms_per_step"] > 0 and entry["numpy"]["gflops"] > 0
        assert entry["tinygrad_act_over_numpy"] > 0 and entry["captured_over_numpy_exact"] > 0
        assert entry["exact_tails_cost"] > 0 and entry["numpy exact"]["ms_per_step"] > 0
        assert ("tinygrad_act_over_torch" in entry) == HAS_TORCH
        assert entry["ceiling_gflops"] > 0 and entry["tinygrad_act"]["fraction_of_ceiling"] > 0


def test_recurrent_numpy_floor_and_torch_gradients_equal_tinygrad_act_lstm_in_float64():
    torch = pytest.importorskip("torch") if HAS_TORCH else None
    differences = recurrent.check_gradients(recurrent.make_problem(7, 3, 2, 5, seed=1), torch)
    assert set(differences) == {"numpy"} | ({"torch", "torch loop"} if HAS_TORCH else set())
    for diff in differences.values():
        assert diff["gradients"] < 1e-10 and diff["loss"] < 1e-12


def test_recurrent_section_reports_every_dtype_and_ratio():
    result = recurrent.run(tiny())
    assert [entry["dtype"] for entry in result["dtypes"]] == ["float32", "float64"]
    for entry in result["dtypes"]:
        assert entry["tinygrad_act"]["ms_per_step"] > 0 and entry["tinygrad_act_over_numpy"] > 0
        assert ("tinygrad_act_over_torch" in entry) == ("tinygrad_act_over_torch_loop" in entry) == HAS_TORCH


def test_memory_section_measures_each_engine_in_a_subprocess():
    result = memory.run(tiny(torch=False))
    assert [r["engine"] for r in result["runs"]] == ["tinygrad_act", "numpy"]
    for entry in result["runs"]:
        for method in ("rss", "tracemalloc"):
            assert "error" not in entry[method], entry[method]
            assert entry[method]["peak_bytes"] >= 0


def test_telemetry_section_reports_the_overhead_of_each_probe_mode():
    from bench import telemetry

    result = telemetry.run_telemetry(tiny())
    assert set(result["modes"]) == {"no probe", "no probe, eager", "every 10 steps", "every step"}
    assert result["modes"]["no probe"]["overhead"] == 0
    assert all(mode["step_ms"] > 0 for mode in result["modes"].values())


def test_telemetry_trainer_replays_measured_and_unmeasured_steps_as_the_runner():
    from bench import telemetry
    from tinygrad_act.lab import data

    dataset = data.load("spirals", n=200)
    settings = [(2, True), (0, True), (0, False)]  # (measure every, capture)
    measured, plain, eager = (telemetry.Trainer(e, dataset, c, depth=2, width=8, batch=8) for e, c in settings)
    replayed = {name: [] for name in ("measured", "plain", "eager")}
    for _ in range(5):
        for name, trainer in zip(replayed, (measured, plain, eager)):
            trainer.steps(1)
            replayed[name].append(trainer.step.replayed)
    assert replayed["measured"] == [False, True, True, True, True]  # step 0 (measured) records, then all replay
    assert measured.probe.record is not None  # step 4's
    assert replayed["plain"] == [False, True, True, True, True]
    assert replayed["eager"] == [False] * 5


def test_experiment_section_times_a_real_run(tmp_path, monkeypatch):
    from bench import telemetry

    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))
    result = telemetry.run_experiment(tiny())
    assert result["steps"] == 20 and 0 < result["run_seconds"] <= result["wall_seconds"]
    assert result["numpy_loop_seconds"] > 0 and result["ratio"] == pytest.approx(
        result["wall_seconds"] / result["numpy_loop_seconds"]
    )  # one round (tiny): the ratio of its two timings


def test_the_hand_written_numpy_loop_of_the_experiment_section_learns():
    from bench import telemetry

    dataset = data.load("spirals:n=200")
    first, later = (telemetry.numpy_loop(dataset, steps, depth=2, width=16, batch=32) for steps in (1, 300))
    assert math.isfinite(first) and later < first - 0.1


@pytest.mark.skipif(not HAS_TORCH, reason="the watch section needs torch")
def test_watch_section_reports_the_overhead_of_watch_for_each_dtype():
    from bench import watch

    result = watch.run(tiny())
    assert set(result["runs"]) == {"(2, 8, 8) float32", "(2, 8, 8) float64"}
    for entry in result["runs"].values():
        assert set(entry) == {"no watch", "every 10 steps", "every step"} and entry["no watch"]["overhead"] == 0
        assert all(mode["step_ms"] > 0 for mode in entry.values())


def test_watch_section_without_torch_says_it_is_skipped(capsys):
    from bench import watch

    assert watch.run(tiny(torch=False)) == {"skipped": "no torch"}
    assert "skipped" in capsys.readouterr().out


def test_figures_section_times_each_share_of_a_real_runs_figures(finished_run, draw_only):
    from bench import drawing

    path, summary = finished_run  # a real run's figures, the session's (the section makes one without --figures-of)
    draw_only("gradient_flow.png", "training.png")  # each share makes its four; renders one (share 0's, share 1's)
    result = drawing.run(tiny(figures_of=path))
    assert result["figures"] == summary["figures"] and len(result["figures"]) == 8
    assert result["steps"] == FINISHED_RUN["steps"] and result["rounds"] == 1
    shares = [result["cpu_seconds"][name] for name in ("share 0 (the fork)", "share 1")]
    assert all(seconds > 0 for seconds in shares) and result["cpu_seconds"]["every figure (the sum)"] == sum(shares)
