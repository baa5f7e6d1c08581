"""One run: a configuration -> a training loop -> files on disk.

The loop is plain (batch, forward, loss, backward, clip, step); measurement attaches from outside
(probes.LayerProbe) and each measured step is appended to ``metrics.jsonl`` and ``metrics.csv`` whole, at
once, so an interrupted or diverged run keeps everything it logged. ``summary.json`` is written last,
whatever happened: status ``completed``, ``diverged``, ``interrupted`` (Ctrl-C or SIGTERM) or ``failed`` (the
file system refused a write; then RunDirError is raised after it). Every file goes through ``rundir``: the
directory is locked while the run writes it, files are replaced atomically and links are never followed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..common import __version__, validate
from ..common.errors import RunDirError, Terminated, UsageError, sigterm_as_interrupt
from ..common.registry import parse_spec
from ..engine.graph import no_grad
from ..engine.tensor import Tensor
from ..nn import activations, optim
from ..nn import init as initializers
from ..nn.modules import MLP, accuracy, cross_entropy
from ..nn.optim import clip_grad_norm
from . import data, rundir, stats
from .probes import LayerProbe, gradient_record

LAYER_FIELDS = [
    "weight_grad_norm",
    "bias_grad_norm",
    "delta_norm",
    "act_mean",
    "act_std",
    "saturation",
    "dead_fraction",
    "update_ratio",
    "grad_subnormal_fraction",
]
CSV_FIELDS = ["step", "loss", "accuracy", "grad_norm", "nonfinite", "layer", *LAYER_FIELDS]
RUN_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "summary.json")


@dataclasses.dataclass
class Config:
    """Everything that determines a run. Defaults make ``DEPTH=20 ACT=sigmoid`` a clear demonstration."""

    depth: int = 20
    width: int = 64
    act: str = "sigmoid"
    init: str = "auto"
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    batch_size: int = 64
    steps: int = 1000
    data: str = "mnist1d"
    seed: int = 0
    dtype: str = "float64"
    residual: bool = False
    norm: str = "none"
    clip: float = 0.0
    log_every: int = 10
    eval_every: int = 100
    figures: bool = True
    out: str = ""

    def validate(self) -> Config:
        """Resolve names and check values without allocating anything; UsageError names the bad value.

        Checks every dataset parameter (without generating the data), the batch size against the training
        split, and the memory the run would need (``memory_estimate``) against ``validate.memory_limit()``.
        """
        for name in ("depth", "width", "batch_size", "steps", "log_every", "eval_every"):
            validate.integer(name, getattr(self, name), 1)
        validate.integer("seed", self.seed, 0)
        validate.number("lr", self.lr, 0, low_open=True)
        validate.number("momentum", self.momentum, 0, 1, high_open=True)
        validate.number("clip", self.clip, 0)
        validate.choice("dtype", self.dtype, ("float32", "float64"))
        validate.choice("norm", self.norm, ("none", "batch", "layer"))
        validate.boolean("residual", self.residual)
        validate.boolean("figures", self.figures)
        activation = _resolved("activation", self.act, lambda: activations.get(self.act))
        try:
            with np.errstate(all="ignore"):
                gain = activation.gain
        except ArithmeticError:
            gain = math.inf
        if not (math.isfinite(gain) and gain > 0):  # before the initializer, which would be blamed for it
            raise UsageError(f"activation {self.act!r} has no usable gain ({gain}): its output overflows or "
                             f"vanishes for unit-variance inputs; choose other parameters")  # fmt: skip
        init = _resolved("initializer", self.init, lambda: initializers.for_activation(self.init, self.act))
        name = self.init if init.name == self.init else f"{self.init} ({init.name} for {self.act})"
        _resolved("initializer", name, lambda: init(4, 4, np.random.default_rng(0)))
        probe = [Tensor(np.zeros(1), requires_grad=True)]
        _resolved("optimizer", self.optimizer, lambda: optim.get(self.optimizer, probe, **self.optimizer_options()))
        shape = _resolved("dataset", self.data, lambda: data.check(self.data))
        if shape is not None and self.batch_size > shape.n_train:
            raise UsageError(
                f"batch_size {self.batch_size} is larger than the training split of {self.data!r} "
                f"({shape.n_train} examples); use at most {shape.n_train} (full batch)"
            )
        estimate, parts = self.memory_estimate(shape)
        validate.memory("this run", estimate, parts)
        return self

    def memory_estimate(self, shape=None) -> tuple[int, dict]:
        """Bytes the run needs at its peak, roughly, and the parts: parameters, activations, data.

        Parameters with their gradients, optimizer state and probe copies (about 5 copies); per hidden layer
        and example about 6 values (pre-activation, activation, their gradients, norm statistics) for the
        larger of a training batch and an evaluation chunk (1000); the dataset while generated (float64) and
        as held (float64 cache plus the run's dtype). ``shape`` is ``data.check(self.data)`` (None: unknown).
        """
        itemsize = np.dtype(self.dtype).itemsize
        features, classes, n = (shape.features, shape.classes, shape.n_train + shape.n_test) if shape else (1, 1, 0)
        depth, width = self.depth, self.width
        weights = (features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * classes
        rows = max(self.batch_size, min(1000, n))
        parts = {
            "parameters": 5 * weights * itemsize,
            "activations": 6 * rows * depth * width * itemsize,
            "data": max(8 * shape.peak_values, n * features * (8 + itemsize)) if shape else 0,
        }
        return sum(parts.values()), parts

    def optimizer_options(self) -> dict:
        """lr (and momentum for SGD) from the config, unless the optimizer spec sets them itself."""
        name, inline = parse_spec(self.optimizer)
        options = {"lr": self.lr, "momentum": self.momentum} if name == "sgd" else {"lr": self.lr}
        return {k: v for k, v in options.items() if k not in inline}

    def default_name(self) -> str:
        """The run directory's name under runs/: activation, init, depth, every other setting that differs from
        the default, then the seed (``relu-he_normal-d80-float32-lr0.1-s0``): a listing says what each run was."""
        default = Config()

        def spec(text):  # leaky_relu:alpha=0.2 -> leaky_relu_alpha0.2
            return text.replace(":", "_").replace("=", "").replace(",", "_").replace("/", "_")

        tags = {
            "width": f"w{self.width}",
            "data": spec(self.data),
            "dtype": self.dtype,
            "optimizer": spec(self.optimizer),
            "lr": f"lr{self.lr:g}",
            "momentum": f"mom{self.momentum:g}",
            "batch_size": f"b{self.batch_size}",
            "steps": f"steps{self.steps}",
            "clip": f"clip{self.clip:g}",
            "residual": "res",
            "norm": f"{self.norm}norm",
        }
        parts = [spec(self.act), spec(self.init), f"d{self.depth}"]
        parts += [tag for key, tag in tags.items() if getattr(self, key) != getattr(default, key)]
        return "-".join([*parts, f"s{self.seed}"])


def _resolved(what: str, spec: str, resolve):
    """``resolve()``; its ValueError (a component's own parameter check) or overflow becomes a UsageError that
    names the component: ``activation 'softplus:beta=0': beta must be positive``."""
    try:
        return resolve()
    except (ValueError, ArithmeticError) as error:
        message = str(error)
        if not message.startswith((what, f"unknown {what}")):
            message = f"{what} {spec!r}: {message}"
        raise UsageError(message) from None


@contextlib.contextmanager
def prepare_run_dir(config: Config, force: bool = False, root: str = "runs"):
    """The run directory, locked for the block: OUT, or a fresh name under runs/; never silently overwritten.

    With ``force`` the files of a previous run in OUT are removed (links removed, never followed) once the lock
    is held, so a directory another process is writing is refused, never emptied under it.
    """
    if config.out:
        path = Path(config.out)
        with rundir.os_errors(path, "create"):  # a name too long fails even to be looked at
            is_file = path.exists() and not path.is_dir()
        if is_file:
            raise UsageError(f"run directory {str(path)!r} is a file; choose another OUT")
        rundir.make_dir(path)
    else:
        path = _fresh_dir(Path(root) / config.default_name())
    with rundir.locked(path):
        leftovers = sorted(p.name for p in path.iterdir() if p.name != rundir.LOCK_NAME)
        if leftovers and not force:
            raise UsageError(f"run directory {str(path)!r} already exists; choose another OUT or pass --force")
        for name in leftovers:
            if name in RUN_FILES or name in ("figures", "summary.json.partial") or name.endswith(".tmp"):
                rundir.remove(path / name)
        yield path


def _fresh_dir(base: Path) -> Path:
    """Create and return ``base``, or ``base-2``, ``base-3``...: the first name no one has (mkdir claims it)."""
    rundir.make_dir(base.parent)
    counter = 1
    while True:
        path = base if counter == 1 else Path(f"{base}-{counter}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            counter += 1
        except OSError as error:
            raise RunDirError(rundir.describe(error, path, "create")) from None


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then raise them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    handlers = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)
    if received:
        raise Terminated if signal.SIGTERM in received else KeyboardInterrupt


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunLog:
    """metrics.jsonl and metrics.csv, appended one measured step at a time, both or neither."""

    def __init__(self, path: Path):
        self._jsonl = rundir.AppendLog(path / "metrics.jsonl")
        self._csv = rundir.AppendLog(path / "metrics.csv")
        self._csv.append(_csv_text([dict(zip(CSV_FIELDS, CSV_FIELDS))]))
        self.records: list[dict] = []

    def write(self, record: dict):
        """Append one measured step to both files (whole lines; on failure neither file keeps it)."""
        line = rundir.dumps(record) + "\n"
        head = {k: record.get(k) for k in ("step", "loss", "accuracy", "grad_norm", "nonfinite")}
        rows = _csv_text([{**head, **layer} for layer in record["layers"]])
        with _interrupts_deferred():  # a Ctrl-C or SIGTERM here waits until the record is whole in both files
            csv_size = self._csv.size
            self._csv.append(rows)
            try:
                self._jsonl.append(line)
            except RunDirError:
                self._csv.truncate(csv_size)
                raise
            self.records.append(record)

    def close(self):
        self._jsonl.close()
        self._csv.close()


def _csv_text(rows: list[dict]) -> str:
    """CSV lines for ``rows`` (non-finite numbers stay numbers: nan, inf; None is empty)."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore").writerows(rows)
    return buffer.getvalue()


def evaluate(model, x, y, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a whole split, without recording a graph, in eval mode."""
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(Tensor(x[start : start + batch_size]))
            yb = y[start : start + batch_size]
            total_loss += cross_entropy(logits, yb).item() * len(yb)
            correct += int(np.sum(np.argmax(logits.data, axis=1) == yb))
    model.train()
    return total_loss / len(x), correct / len(x)


def run(config: Config, force: bool = False, progress: bool = True, command: str | None = None) -> dict:
    """Train, measure and write the run directory; return the summary (see ARCHITECTURE.md).

    Ctrl-C and SIGTERM end the run as "interrupted" (SIGTERM is turned into Terminated for the duration), with
    its records and summary kept. A file-system fault (no space left ...) raises RunDirError after writing a
    summary with status "failed" if the disk still takes one; metrics.jsonl keeps only whole records.
    """
    config.validate()
    with sigterm_as_interrupt():
        dataset = data.load(config.data, dtype=np.dtype(config.dtype))  # bad data parameters write nothing
        with prepare_run_dir(config, force=force) as path:
            return _run_in(path, config, dataset, progress, command)


def _run_in(path: Path, config: Config, dataset, progress: bool, command: str | None) -> dict:
    """The run proper, in its locked directory: config.json, the loop, the final evaluation, figures, summary."""
    from . import report  # matplotlib is imported only when figures are drawn

    started = time.perf_counter()
    model_seed, batch_seed = np.random.SeedSequence(config.seed).spawn(2)
    model = MLP(
        dataset.num_features,
        [config.width] * config.depth,
        dataset.num_classes,
        activation=config.act,
        init=config.init,
        residual=config.residual,
        norm=None if config.norm == "none" else config.norm,
        seed=int(model_seed.generate_state(1)[0]),
        dtype=np.dtype(config.dtype),
    )
    optimizer = optim.get(config.optimizer, model.parameters(), **config.optimizer_options())
    last_step = config.steps - 1
    # Evaluation steps are always measured too, so every test-set number sits in a logged record.
    probe = LayerProbe(
        model,
        optimizer,
        lambda s: s % config.log_every == 0 or s % config.eval_every == 0 or s == last_step,
    )
    theory = predict_theory(config, model, dataset)
    resolved = {
        **dataclasses.asdict(config),
        "out": str(path),
        "activation_params": model.activation.params,
        "init_resolved": {"name": model.init.name, "params": model.init.params},
        "dataset": {
            "name": dataset.name,
            "params": dataset.params,
            "features": dataset.num_features,
            "classes": dataset.num_classes,
            "train": len(dataset.y_train),
            "test": len(dataset.y_test),
        },
        "parameters": model.num_parameters(),
        "version": __version__,
        "numpy": np.__version__,
        "command": command or " ".join(sys.argv),
    }
    rundir.atomic_write(path / "config.json", rundir.dumps(resolved, indent=2) + "\n")

    log = RunLog(path)
    status, message, steps_done, fault = "completed", "", 0, None
    final, drawn = {}, {}
    rng = np.random.default_rng(batch_seed)
    batches = data.batches(dataset, config.batch_size, rng)
    bar = _progress_bar(config.steps, progress)
    when = "after {steps_done} steps"
    try:
        try:
            with np.errstate(all="ignore"):  # overflow is detected below, explicitly, as divergence
                for step in range(config.steps):
                    xb, yb = next(batches)
                    logits = model(Tensor(xb))
                    loss = cross_entropy(logits, yb)
                    optimizer.zero_grad()
                    loss.backward()
                    loss_value = loss.item()
                    if config.clip:
                        clip_grad_norm(model.parameters(), config.clip)
                    if not math.isfinite(loss_value):
                        stats = probe.collect() if probe.measuring else gradient_record(model)
                        status, message = "diverged", f"diverged at step {step}: the loss is {loss_value}"
                        log.write({"step": step, "loss": loss_value, "accuracy": accuracy(logits, yb), **stats})
                        break
                    optimizer.step()
                    steps_done = step + 1
                    if probe.record is not None:
                        record = {"step": step, "loss": loss_value, "accuracy": accuracy(logits, yb), **probe.record}
                        if step % config.eval_every == 0 or step == last_step:
                            test_loss, test_accuracy = evaluate(model, dataset.x_test, dataset.y_test)
                            record.update(test_loss=test_loss, test_accuracy=test_accuracy)
                        record["time"] = time.perf_counter() - started
                        if record["nonfinite"]:
                            status, message = "diverged", f"diverged at step {step}: non-finite gradients"
                        log.write(record)
                        if status == "diverged":
                            break
                        bar.set_postfix_str(_postfix(record), refresh=False)
                    bar.update(1)
        except RunDirError as error:  # no space left, ...: keep what is on disk, say so in one line
            status, message, fault = "failed", str(error), error
        finally:
            bar.close()
            log.close()
            probe.detach()
        when = "during the final evaluation"
        if status == "completed":
            with np.errstate(all="ignore"):
                final["train_loss"], final["train_accuracy"] = evaluate(model, dataset.x_train, dataset.y_train)
                final["test_loss"], final["test_accuracy"] = evaluate(model, dataset.x_test, dataset.y_test)
        when = "while drawing the figures"
        if config.figures and status != "failed":
            drawn = _draw(
                report, path, log.records, summarize(config, log.records, status, message, steps_done, final, theory)
            )
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: stop now, the summary comes from the records logged
        stopped = _stopped_by(stop, when.format(steps_done=steps_done))
        diverged = status == "diverged"
        status, message = "interrupted", "; ".join(filter(None, [message, stopped]))
        signal_name = "SIGTERM" if isinstance(stop, Terminated) else "SIGINT"
    else:
        diverged, signal_name = status == "diverged", None

    with _interrupts_deferred():  # the summary is the run's last word: a signal now waits until it is written
        summary = summarize(config, log.records, status, message, steps_done, final, theory, diverged=diverged)
        summary.update(drawn)
        if signal_name:
            summary["signal"] = signal_name  # what stopped the run: the command line exits 130 or 143
        summary["wall_time_s"] = time.perf_counter() - started
        summary["files"] = _listing(path)
        try:
            # Atomic: a sweep treats a run as complete once summary.json exists, so it is never half written.
            rundir.atomic_write(path / "summary.json", rundir.dumps(summary, indent=2) + "\n")
        except RunDirError:
            if fault is None:
                raise
    if fault is not None:
        raise fault
    summary["path"] = str(path)
    return summary


def _draw(report, path: Path, records: list[dict], summary: dict) -> dict:
    """{"figures": [...]} or, if plotting fails, {"figures_error": ...}: figures must never lose the run."""
    try:
        return {"figures": report.figures(path, records, summary)}
    except Exception as error:
        return {"figures_error": f"{type(error).__name__}: {error}"}


def _stopped_by(stop: KeyboardInterrupt, when: str) -> str:
    """``interrupted by the user after 12 steps`` or ``terminated (SIGTERM) during the final evaluation``."""
    return f"{'terminated (SIGTERM)' if isinstance(stop, Terminated) else 'interrupted by the user'} {when}"


def _listing(path: Path) -> list[str]:
    """The run's files as they will be once summary.json is written (directories end with /; no hidden files)."""
    names = {p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith(".")}
    return sorted(names | {"summary.json"})


def summarize(config, records, status, message, steps_done, final, theory, diverged: bool | None = None) -> dict:
    """The summary: status, final numbers, r and verdict at step 0 and at the end, theory beside them.

    ``diverged`` (default: status == "diverged") says the training diverged even if the run was then
    interrupted while drawing its figures; its final verdict is then "diverged".
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
        summary["verdict"] = stats.verdict(summary["ratio_init"], records[0]["nonfinite"])
        # A run that diverged ended with non-finite numbers: that, not r before it, is its final verdict.
        if diverged is None:
            diverged = status == "diverged"
        summary["verdict_final"] = (
            "diverged" if diverged else stats.verdict(summary["ratio_final"], records[-1]["nonfinite"])
        )
    summary["theory"] = theory
    return summary


def predict_theory(config, model, dataset) -> dict | None:
    """Mean-field prediction of r for this configuration (None where the theory does not apply)."""
    try:
        from . import theory
    except ImportError:
        return None
    if config.residual or config.norm != "none":
        return {"applies": False, "reason": "mean-field theory here covers plain MLPs (no residual, no norm)"}
    # Each hidden layer's own sigma_w^2 = fan_in * mean(W^2): the first layer's fan_in differs from the rest.
    sigma_w2 = [theory.sigma_w2_of_weights(layer.weight.data) for layer in model.layers[:-1]]
    q0 = float(np.mean(dataset.x_train.astype(np.float64) ** 2))
    try:
        prediction = theory.predict(model.activation, config.depth, sigma_w2, 0.0, q0=q0)
    except Exception as error:  # the laboratory runs even if the theory cannot say anything
        return {"applies": False, "reason": f"{type(error).__name__}: {error}"}
    return {
        "applies": True,
        "sigma_w2": float(np.mean(sigma_w2[1:] or sigma_w2)),
        "sigma_w2_per_layer": sigma_w2,
        "sigma_b2": 0.0,
        "input_variance": q0,
        "ratio": prediction.ratio_first_last,
        "per_layer_factor": prediction.per_layer_factor,
        "depth_scale": prediction.depth_scale,
        "verdict": stats.verdict(prediction.ratio_first_last),
    }


def _progress_bar(total: int, enabled: bool):
    """tqdm's convention: shown on a terminal only (disable=None), never when ``enabled`` is False."""
    from tqdm import tqdm

    return tqdm(
        total=total,
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


def open_records(path) -> list[dict]:
    """A run's metrics.jsonl as records (nan/inf restored): rundir.read_records, the one reader."""
    return rundir.read_records(path)
