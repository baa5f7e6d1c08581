"""One run: a configuration -> build -> train -> finish -> files on disk (see ARCHITECTURE.md, the run files).

``build`` makes the model, optimizer and probe; ``train`` is the plain loop (batch, forward, loss, backward,
clip, step) with measurement attached from outside (probes.LayerProbe), each measured step appended to
``metrics.jsonl`` and ``metrics.csv`` whole (measure/records.py's RunLog), so an interrupted or diverged run keeps
everything it logged; ``finish`` writes ``summary.json`` last, whatever happened: status ``completed``, ``diverged``,
``interrupted`` (Ctrl-C or SIGTERM) or ``failed`` (the file system refused a write; then RunDirError is raised
after it). Every file goes through common/files.py: the directory is locked while the run writes it, files are
replaced atomically and links are never followed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ...common import files
from ...common.errors import RunDirError, Terminated, UsageError, interrupts_deferred, sigterm_as_interrupt
from ...nn.modules import MLP
from .. import data, stats
from ..data import tasks
from ..data.tasks import evaluate  # the whole-split score; callers import it from here too
from ..measure import jacobian, through_time
from ..measure.probes import gradient_record
from ..measure.records import LAYER_FIELDS, RUN_FILES, RunLog, read_metrics, read_summary  # noqa: F401  (LAYER_FIELDS, RUN_FILES: callers import them from here)
from ..show import drawing, html, plots, report, run_figures
from ..theory import mean_field as theory
from . import aside, checkpoint, provenance, recurrent, rundir, tensorboard, threads
from .config import Config, Resolved

__all__ = [
    "Config",
    "LAYER_FIELDS",
    "RUN_FILES",
    "run",
    "resume",
    "build",
    "make_model",
    "train",
    "finish",
    "summarize",
    "evaluate",
]


@dataclasses.dataclass
class Outcome:
    """How the run has gone so far; ``finish`` turns it into the summary."""

    status: str = "completed"  # or diverged, failed, interrupted
    message: str = ""
    steps_done: int = 0
    fault: RunDirError | None = None  # the file system's refusal, raised once the summary is written
    diverged: bool | None = None  # whether training diverged, once an interrupt has replaced that status
    signal: str | None = None  # SIGINT or SIGTERM, if one stopped the run
    resumed: tuple = ()  # the steps the run was resumed from, earliest first (summary["resumed"])

    def interrupted(self, stop: KeyboardInterrupt, when: str) -> None:
        """Ctrl-C or SIGTERM: ``interrupted by the user after 12 steps``, ``terminated (SIGTERM) during ...``."""
        self.diverged = self.status == "diverged"
        terminated = isinstance(stop, Terminated)
        stopped = f"{'terminated (SIGTERM)' if terminated else 'interrupted by the user'} {when}"
        self.status, self.message = "interrupted", "; ".join(filter(None, [self.message, stopped]))
        self.signal = "SIGTERM" if terminated else "SIGINT"


def run(config: Config, force: bool = False, progress: bool = True, command: str | None = None,
        draw_aside: bool = False) -> dict:  # fmt: skip
    """Train, measure and write the run directory; return the summary. ``draw_aside``: the figures in a second
    process, set up while the run trains (show/drawing.py; the command line's runs), the same pictures.

    Ctrl-C and SIGTERM end the run as "interrupted" (SIGTERM is turned into Terminated for the duration), with
    its records and summary kept. A file-system fault (no space left ...) raises RunDirError after writing a
    summary with status "failed" if the disk still takes one; metrics.jsonl keeps only whole records.
    """
    resolved = config.resolve()
    with sigterm_as_interrupt(), threads.blas_threads(config.width):
        dataset = load_data(config)  # bad data parameters write nothing
        with rundir.prepare(config.out, config.default_name(), force=force) as path:
            return _run_in(path, config, resolved, dataset, progress, command, draw_aside=draw_aside)


def resume(path, progress: bool = True, draw_aside: bool = False) -> dict:
    """Continue an interrupted run from its checkpoint.npz, with the settings of its config.json; the summary.

    The records logged after the checkpoint are computed again, so the run's metrics.jsonl ends as if it had
    never stopped. Everything is checked before anything changes (a refused resume leaves the run as it was): the
    run is this laboratory's, its status, its data and plug-ins are those it was made with (provenance.check), its
    checkpoint and records fit it. A completed or diverged run has nothing to resume (UsageError).
    """
    path = Path(path)
    rundir.owned_run(path)
    config = Config.read(path)
    stored = files.load_json(path / "config.json", "a run's config.json")
    source = provenance.data_source(config, stored)
    resolved = config.resolve(data_spec=source)
    with sigterm_as_interrupt(), threads.blas_threads(config.width):
        dataset = load_data(config, source)
        provenance.check(stored, dataset, path / "config.json")
        with rundir.claim(path, "run", reuse=True):
            # a run killed before its summary has none; one that has a summary must have a readable one
            summary = read_summary(path) if os.path.lexists(path / "summary.json") else {}
            if summary.get("status") in ("completed", "diverged"):
                raise UsageError(f"run {str(path)!r} is {summary['status']}: there is nothing to resume")
            state = checkpoint.load(path, config, dataset.sha256)
            records = [record for record in read_metrics(path) if record["step"] < state.step]
            return _run_in(path, config, resolved, dataset, progress, None, resuming=(state, records),
                           draw_aside=draw_aside)  # fmt: skip


def _run_in(path: Path, config: Config, resolved: Resolved, dataset, progress: bool, command: str | None,
            resuming: tuple | None = None, draw_aside: bool = False) -> dict:  # fmt: skip
    """build, config.json, train, final numbers, figures, then finish: a signal at any point still ends in
    a summary (the records logged until then are the run). ``resuming``: (the checkpoint, the records before it);
    config.json is kept, and summary.json removed only once the checkpoint has been restored whole."""
    started = time.perf_counter()
    model, training_step, probe, batches = build(config, dataset, resolved)
    with aside.Worker(aside.wanted(config, draw_aside)) as worker:  # its thread ends with the run
        optimizer = training_step.optimizer
        prediction = predict_theory(config, model, dataset)  # of the initial weights, resumed or not
        spectrum = measure_jacobian(config, model, dataset, worker)  # of the initial weights too (its theory aside)
        outcome, final, drawn, records = Outcome(), {}, {}, None
        if resuming:
            state, records = resuming
            checkpoint.restore(state, model, optimizer, batches, probe)
            files.remove(path / "summary.json")  # every check passed: until it writes its own, it is unfinished
            outcome.steps_done, outcome.resumed = state.step, (*state.resumed, state.step)
            started -= records[-1]["time"] if records else 0.0  # time goes on from the last record kept
        else:
            record = provenance.config_record(config, path, model, dataset, command)
            files.atomic_write(path / "config.json", files.dumps(record, indent=2) + "\n")
        written = (
            tensorboard.TensorBoardLog(path, probe, config, records) if config.tensorboard else RunLog(path, records)
        )
        shadow = make_model(config, dataset.num_features, dataset.num_classes, resolved) if worker.aside else None
        log = aside.EvaluatingLog(written, model, dataset, worker, shadow)  # the evaluations: at once, or aside
        when = "after {steps_done} steps"
        drawer = drawing.Drawer() if draw_aside and config.figures else None
        try:
            saver = _Saver(path, config, dataset.sha256, model, optimizer, batches, probe, outcome.resumed, log)
            train(config, model, training_step, probe, batches, dataset, log, outcome, progress, started, saver)
            if run_figures.asked(config.figures, "histograms") and outcome.status != "failed":  # its data
                probe.save_histograms(path / "histograms.npz")
            if outcome.status == "completed":
                final.update(aside.final_evaluation(log.records))
            when = "while drawing the figures"
            if config.figures and outcome.status != "failed":
                summary = summarize(config, log.records, outcome.status, outcome.message, outcome.steps_done, final,
                                    prediction, dataset=dataset)  # fmt: skip
                drawn = draw(path, log.records, {**summary, "jacobian": aside.settled(spectrum)}, drawer)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: stop now, the summary comes from the records logged
            outcome.interrupted(stop, when.format(steps_done=outcome.steps_done))
        finally:
            if drawer is not None:
                drawer.close()
        return finish(path, config, log.records, outcome, final, prediction, drawn, started, spectrum, dataset)


def build(config: Config, dataset, resolved: Resolved | None = None):
    """The model, its training step (nn.Step, or the engine's: run/engines.py; the optimizer is
    ``step.optimizer``), the probe that measures the chosen steps, and the endless batches.

    The model's weights and the batch order come from two independent streams of ``config.seed``; the activation,
    initializers and optimizer are ``resolved``'s (``config.resolve()`` if not given): no name is resolved here.
    """
    resolved = config.resolve() if resolved is None else resolved
    if config.model == "rnn":
        seeds = _seeds(config)
        return recurrent.build(config, dataset, resolved.optimizer, seeds, lambda step: _measured(config, step))
    model = make_model(config, dataset.num_features, dataset.num_classes, resolved)
    optimizer = resolved.optimizer(model.parameters())
    batches = data.batches(dataset, config.batch_size, np.random.default_rng(_seeds(config)[1]))
    # Evaluation steps are always measured too, so every test-set number sits in a logged record.
    step, probe = resolved.engine.build(config, model, optimizer, lambda step: _measured(config, step))
    return model, step, probe, batches


def load_data(config: Config, spec: str | None = None):
    """The run's dataset: ``spec`` (default ``config.data``; a resumed run's: the path it recorded) with the
    parameters its settings add (seq_len), in its dtype."""
    return data.load(spec or config.data, dtype=np.dtype(config.dtype), **recurrent.data_params(config))


def make_model(config: Config, num_features: int, num_classes: int, resolved: Resolved | None = None,
               readout_steps: int = 1):  # fmt: skip
    """The run's model with its initial weights (from the first stream of ``config.seed``): the MLP, or for
    ``model = "rnn"`` the RecurrentNet (``num_classes``: its outputs; ``readout_steps``: the labelled steps of a
    per-step task); Run.model loads the trained weights into the same architecture. The MLP's activation and
    initializers are ``resolved``'s (build: named once, in Config.resolve); without it, config's names (Run.model,
    which needs no data)."""
    if config.model == "rnn":
        seed = int(_seeds(config)[0].generate_state(1)[0])
        return recurrent.make_model(config, num_features, num_classes, readout_steps, seed)
    if resolved is None:
        activation, init, output_init = config.act, config.init, config.output_init
    else:
        activation, init, output_init = resolved.activation, resolved.init, resolved.output_init
    return MLP(
        num_features,
        [config.width] * config.depth,
        num_classes,
        activation=activation,
        init=init,
        output_init=output_init,
        sigma_b2=config.sigma_b2,
        residual=config.residual,
        norm=None if config.norm == "none" else config.norm,
        seed=int(_seeds(config)[0].generate_state(1)[0]),
        dtype=np.dtype(config.dtype),
    )


def _seeds(config: Config):
    """The two independent streams of ``config.seed``: the model's weights and the batch order."""
    return np.random.SeedSequence(config.seed).spawn(2)


def measure_jacobian(config: Config, model, dataset, worker: aside.Worker) -> dict:
    """summary["jacobian"]: the singular values of dz_L/dz_1 at step 0 for the first examples of the first
    batch (a fresh copy of the batch stream, so training sees the same batches), with the theory beside them (from
    ``worker``: a Future, which aside.settled replaces by its value)."""
    first, _ = next(data.batches(dataset, config.batch_size, np.random.default_rng(_seeds(config)[1])))
    if config.model == "rnn":
        return recurrent.measure_jacobian(config, model, first)
    skipped = jacobian.not_measured(config)
    if skipped is not None:
        return skipped
    entry = jacobian.measure(model, first)
    sigma_w2, q0 = _initial_gains(model, dataset)  # read now: the worker must not read arrays training changes
    predicted = (config, model.activation, model.init, sigma_w2, q0, config.sigma_b2)
    entry["theory"] = worker.submit(jacobian.predict, *predicted)
    return entry


def _measured(config: Config, step: int) -> bool:
    """Steps the probe measures: every ``log_every``, and every evaluated step, so that every test-set number
    sits in a logged record."""
    return step % config.log_every == 0 or _evaluated(config, step)


def _evaluated(config: Config, step: int) -> bool:
    """Steps with a test-set evaluation: every ``eval_every`` and the last."""
    return step % config.eval_every == 0 or step == config.steps - 1


# Seconds between two checkpoints written at measured steps. Replacing a file costs milliseconds (the file system
# flushes it on rename), as much as many small training steps: at most one a second keeps that near 1% of the
# run. The end of the run and a signal always write one, so only a crash (kill -9) loses up to a second.
CHECKPOINT_INTERVAL = 1.0


class _Saver:
    """Writes checkpoint.npz for the run's current state (after ``steps_done`` updates), once ``log`` (an
    aside.EvaluatingLog) has written every record it holds: a resumed run finds the records before the checkpoint."""

    def __init__(self, path, config, data_sha256, model, optimizer, batches, probe, resumed=(), log=None):
        self.path, self.config, self.data_sha256, self.resumed, self.log = path, config, data_sha256, resumed, log
        self.parts = (model, optimizer, batches, probe)
        self.step = None  # the step of the checkpoint on disk, if this process wrote one
        self.written = -math.inf  # when (time.perf_counter)

    def __call__(self, steps_done: int, now: bool = True) -> None:
        """Write the checkpoint; with ``now=False`` only if CHECKPOINT_INTERVAL has passed since the last one."""
        if steps_done != self.step and (now or time.perf_counter() - self.written >= CHECKPOINT_INTERVAL):
            if self.log is not None:
                self.log.flush()
            checkpoint.save(self.path, self.config, steps_done, *self.parts, data_sha256=self.data_sha256,
                            resumed=self.resumed)  # fmt: skip
            self.step, self.written = steps_done, time.perf_counter()


def train(config, model, training_step, probe, batches, dataset, log, outcome: Outcome, progress, started,
          save=None) -> None:  # fmt: skip
    """The loop: batch, forward, loss, backward, clip, step; each measured step goes to ``log`` (aside.EvaluatingLog:
    the evaluated steps' whole-split numbers with it, every record written by the end, or when a signal stops it).

    Stops at the first non-finite loss or gradient (``outcome`` diverged) or when the file system refuses a
    record (``outcome`` failed, the error kept for after the summary); ``outcome.steps_done`` counts updates
    (a resumed run starts from there). ``save(steps_done, now)`` writes a checkpoint: after measured steps (at
    most one a CHECKPOINT_INTERVAL), at the end, and when a signal stops the run (a signal waits for the step
    in progress, so the state is whole).
    """
    save = save or (lambda steps_done, now=True: None)
    bar = _progress_bar(config.steps, progress, initial=outcome.steps_done)
    try:
        with np.errstate(all="ignore"):  # overflow is detected below, explicitly, as divergence
            for step in range(outcome.steps_done, config.steps):
                with interrupts_deferred():
                    if not _train_step(config, model, training_step, probe, batches, dataset, log, outcome, step,
                                       started, bar, save):  # fmt: skip
                        break
        log.flush()
        if outcome.status == "completed":
            save(outcome.steps_done)
    except KeyboardInterrupt:
        with contextlib.suppress(RunDirError):  # what is on disk stays: records, the checkpoint of a measured step
            log.flush()  # the records logged before the signal
            if outcome.status == "completed" and getattr(batches, "served", None) == outcome.steps_done:
                save(outcome.steps_done)  # between steps
        raise
    except RunDirError as error:  # no space left, ...: keep what is on disk, say so in one line
        outcome.status, outcome.message, outcome.fault = "failed", str(error), error
    finally:
        bar.close()
        log.close()
        probe.detach()


def _train_step(config, model, training_step, probe, batches, dataset, log, outcome, step, started, bar, save) -> bool:
    """One step of ``train``; False when training must stop (diverged)."""
    xb, yb = next(batches)
    loss_value, logits = training_step(xb, yb)  # forward, loss, backward, clip; replayed unless measured
    # a non-finite gradient stops the run here too (a measured step's record counts them, after its update)
    if not math.isfinite(loss_value) or not (probe.measuring or training_step.finite()):
        unmeasured = through_time.gradient_record if config.model == "rnn" else gradient_record
        measured = probe.collect() if probe.measuring else unmeasured(model)
        reason = f"the loss is {loss_value}" if not math.isfinite(loss_value) else "non-finite gradients"
        outcome.status, outcome.message = "diverged", f"diverged at step {step}: {reason}"
        log.write({"step": step, "loss": loss_value, "accuracy": tasks.accuracy(dataset.task, logits, yb),
                   **measured})  # fmt: skip
        return False
    training_step.update()  # optimizer.step(), fused after a replayed step
    outcome.steps_done = step + 1
    if probe.record is not None:
        record = {"step": step, "loss": loss_value, "accuracy": tasks.accuracy(dataset.task, logits, yb),
                  **probe.record}  # fmt: skip
        if _evaluated(config, step):  # loss/accuracy are the minibatch's; these are whole splits
            log.evaluate(record)
        record["time"] = time.perf_counter() - started
        if record["nonfinite"]:
            outcome.status, outcome.message = "diverged", f"diverged at step {step}: non-finite gradients"
        log.write(record)
        if outcome.status == "diverged":
            return False
        save(outcome.steps_done, now=False)
        bar.set_postfix_str(_postfix(record), refresh=False)
    bar.update(1)
    return True


def finish(path: Path, config: Config, records, outcome: Outcome, final, prediction, drawn, started,
           spectrum: dict | None = None, dataset=None) -> dict:  # fmt: skip
    """Write summary.json, the run's last word (a signal now waits until it is written); return the summary.

    A file-system fault met while training is raised after it, once the summary is on disk (if it fits).
    """
    with interrupts_deferred():
        summary = summarize(config, records, outcome.status, outcome.message, outcome.steps_done, final, prediction,
                            diverged=outcome.diverged, dataset=dataset)  # fmt: skip
        if spectrum is not None:
            summary["jacobian"] = aside.settled(spectrum)
        summary["engine"], summary["device"] = config.engine, config.device
        summary.update(drawn)
        if outcome.signal:
            summary["signal"] = outcome.signal  # what stopped the run: the command line exits 130 or 143
        if outcome.resumed:  # from which step, how many times (a resumed run's records equal a run never stopped)
            summary["resumed"] = {"from_step": outcome.resumed[-1], "times": len(outcome.resumed),
                                  "from_steps": list(outcome.resumed)}  # fmt: skip
        summary["wall_time_s"] = time.perf_counter() - started
        summary.update(html.write_run_page(path, config, records, summary))  # report.html: figures and numbers
        if config.tensorboard:
            summary.update(_tensorboard_finish(path, config, records, summary))
        summary["files"] = rundir.listing(path)
        try:
            # Atomic: a sweep treats a run as complete once summary.json exists, so it is never half written.
            files.atomic_write(path / "summary.json", files.dumps(summary, indent=2) + "\n")
        except RunDirError:
            if outcome.fault is None:
                raise
    if outcome.fault is not None:
        raise outcome.fault
    summary["path"] = str(path)
    return summary


def _tensorboard_finish(path: Path, config: Config, records: list[dict], summary: dict) -> dict:
    """The verdict (the terminal's report) and the HParams entry in TensorBoard: {} or {"tensorboard_error": ...}
    (an optional viewer never loses the run)."""
    text = report.terminal_report({**summary, "path": str(path)}, records, config, width=report.DEFAULT_WIDTH)
    try:
        tensorboard.finish(path, config, summary, "```\n" + text + "\n```")
    except (RunDirError, UsageError) as error:
        return {"tensorboard_error": str(error)}
    return {}


def draw(path: Path, records: list[dict], summary: dict, drawer: drawing.Drawer | None = None) -> dict:
    """{"figures": [...]} or, if plotting fails, {"figures_error": ...}: figures must never lose the run.
    Without matplotlib: {"figures_skipped": the line that says so}, and no figures/ directory. ``drawer``: drawn
    there (the same answers), else here."""
    try:
        if drawer is not None:
            return drawer.draw(path, records, summary)
        if skipped := plots.unavailable():
            return {"figures_skipped": skipped}
        return {"figures": run_figures.figures(path, records, summary)}
    except Exception as error:
        return {"figures_error": f"{type(error).__name__}: {error}"}


def summarize(config, records, status, message, steps_done, final, theory, diverged: bool | None = None,
              dataset=None) -> dict:  # fmt: skip
    """The summary: status, final numbers, r and verdict at step 0 and at the end, theory beside them.

    ``diverged`` (default: status == "diverged") says the training diverged even if the run was then
    interrupted while drawing its figures; its final verdict is then "diverged". A recurrent run's (``dataset``
    given) r is r_time, with ``through_time`` beside it (run/recurrent.py's summarize).
    """
    summary = {"status": status, "message": message, "steps_done": steps_done, "steps_requested": config.steps}
    summary["records"] = len(records)  # records written to metrics.jsonl: the summary never claims more
    summary.update(final)
    if records:
        summary["final_loss"], summary["final_accuracy"] = records[-1]["loss"], records[-1]["accuracy"]
        # A diverged run's last record may hold no delta norms (the step was not measured): use the last that does.
        measured = [r for r in records if not math.isnan(stats.first_last_ratio(r))] or records
        for key, record in (("init", records[0]), ("final", measured[-1])):
            ratio = stats.first_last_ratio(record)
            summary[f"ratio_{key}"] = ratio
            summary[f"per_layer_factor_{key}"] = stats.per_layer_factor(ratio, config.depth)
            summary[f"step_{key}"] = record["step"]
            # why r is what it is: the layers' gains (stats.layer_gains says which layers and how averaged)
            summary[f"gain_{key}"] = stats.layer_gains(record, config.residual, config.norm)
        summary["verdict"] = stats.verdict(summary["ratio_init"], records[0]["nonfinite"])
        # A run that diverged ended with non-finite numbers: that, not r before it, is its final verdict.
        if diverged is None:
            diverged = status == "diverged"
        summary["verdict_final"] = (
            "diverged" if diverged else stats.verdict(summary["ratio_final"], records[-1]["nonfinite"])
        )
    summary["theory"] = theory
    if config.model == "rnn" and dataset is not None:
        recurrent.summarize(summary, records, config, dataset, status == "diverged" if diverged is None else diverged)
    return summary


def predict_theory(config, model, dataset) -> dict | None:
    """Mean-field prediction of r for this configuration (``applies`` False, with the reason, where it cannot).
    A recurrent run's theory comes from its step-0 record (run/recurrent.py): None here."""
    if config.model == "rnn":
        return None
    if config.residual or config.norm != "none":
        return {"applies": False, "reason": "mean-field theory here covers plain MLPs (no residual, no norm)"}
    sigma_w2, q0 = _initial_gains(model, dataset)
    return theory_entry(model.activation, sigma_w2, config.sigma_b2, q0)


def _initial_gains(model, dataset) -> tuple[list[float], float]:
    """Each hidden layer's own sigma_w^2 = fan_in * mean(W^2) (the first's fan_in differs), and the inputs' q0."""
    sigma_w2 = [theory.sigma_w2_of_weights(layer.weight.data) for layer in model.layers[:-1]]
    return sigma_w2, float(np.mean(dataset.x_train.astype(np.float64) ** 2))


def theory_entry(activation, sigma_w2: list, sigma_b2: float, q0: float) -> dict:
    """summary["theory"] for a plain chain of Linear + ``activation`` with each hidden layer's measured σ_w²
    (input side first), bias variance ``sigma_b2`` and input second moment ``q0``; a native run and a watched
    PyTorch model (tinygrad_act/torch) both say it so."""
    try:
        prediction = theory.predict(activation, len(sigma_w2), sigma_w2, sigma_b2, q0=q0)
    except Exception as error:  # the laboratory runs even if the theory cannot say anything
        return {"applies": False, "reason": f"{type(error).__name__}: {error}"}
    return {
        "applies": True,
        "sigma_w2": float(np.mean(sigma_w2[1:] or sigma_w2)),
        "sigma_w2_per_layer": sigma_w2,
        "sigma_b2": sigma_b2,
        "input_variance": q0,
        "ratio": prediction.ratio_first_last,
        "per_layer_factor": prediction.per_layer_factor,
        "depth_scale": prediction.depth_scale,
        "verdict": stats.verdict(prediction.ratio_first_last),
    }


def _progress_bar(total: int, enabled: bool, initial: int = 0):
    """tqdm's convention: shown on a terminal only (disable=None), never when ``enabled`` is False."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc="training",
        unit="step",
        disable=None if enabled else True,
        mininterval=0.25,
        dynamic_ncols=True,
        file=sys.stderr,
        leave=False,
    )


def _postfix(record: dict) -> str:
    ratio = stats.first_last_ratio(record)
    return f"loss={record['loss']:.4g} acc={record['accuracy']:.2f} r={ratio:.1e}"
