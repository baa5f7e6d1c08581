"""One run: a configuration -> a training loop -> files on disk.

The loop is plain (batch, forward, loss, backward, clip, step); measurement attaches from outside
(probes.LayerProbe) and each measured step is appended to ``metrics.jsonl`` and ``metrics.csv`` and
flushed at once, so an interrupted or diverged run keeps everything it logged. ``summary.json`` is written
last, whatever happened: status ``completed``, ``diverged`` or ``interrupted``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import __version__, activations, data, optim
from . import init as initializers
from .graph import no_grad
from .nn import MLP, accuracy, cross_entropy
from .optim import clip_grad_norm
from .probes import LayerProbe, gradient_record
from .registry import parse_spec
from .tensor import Tensor

VANISHING_BELOW = 1e-2
EXPLODING_ABOVE = 1e2

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
        """Resolve names and check values; raise ValueError naming the bad value and the valid choices."""
        for name in ("depth", "width", "batch_size", "steps", "log_every", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name in ("lr", "momentum", "clip"):
            if isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip) and self.clip >= 0):
            raise ValueError(f"clip must be a non-negative finite number (0 = no clipping), got {self.clip!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: float32, float64")
        if self.norm not in ("none", "batch", "layer"):
            raise ValueError(f"unknown norm {self.norm!r}; choose one of: none, batch, layer")
        activations.get(self.act)
        try:
            initializers.get(initializers.for_activation(self.init, self.act))(4, 4, np.random.default_rng(0))
        except OverflowError:
            raise ValueError(f"initializer {self.init!r} overflows: its scale is too large to draw weights") from None
        optim.get(self.optimizer, [Tensor(np.zeros(1), requires_grad=True)], **self.optimizer_options())
        data.cache_path(self.data)  # resolves the name and parameters without generating anything
        return self

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


def verdict_of(ratio: float, nonfinite: int = 0) -> str:
    """Our rule: vanishing if r < 1e-2, exploding if r > 1e2 or any gradient is not finite, else healthy."""
    if nonfinite or not math.isfinite(ratio):
        return "exploding"
    if ratio < VANISHING_BELOW:
        return "vanishing"
    if ratio > EXPLODING_ABOVE:
        return "exploding"
    return "healthy"


def first_last_ratio(record: dict) -> float:
    """r = delta_norm(first hidden layer) / delta_norm(last hidden layer)."""
    hidden = record["layers"][:-1]
    first, last = hidden[0]["delta_norm"], hidden[-1]["delta_norm"]
    if first is None or last is None or math.isnan(first) or math.isnan(last):
        return math.nan
    if last == 0:  # no gradient reaches the last hidden layer: 0/0 means nothing flows at all
        return math.inf if first > 0 else 0.0
    return first / last


def per_layer_factor(ratio: float, depth: int) -> float:
    """The geometric-mean factor per hidden layer: r^(1/(L-1))."""
    if depth < 2 or not math.isfinite(ratio) or ratio <= 0:
        return math.nan
    return ratio ** (1.0 / (depth - 1))


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(obj):
    """JSON has no NaN/Infinity: non-finite numbers become null (the CSV keeps 'nan'/'inf')."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    return _finite_or_none(obj)


def prepare_run_dir(config: Config, force: bool = False, root: str = "runs") -> Path:
    """The run directory: OUT, or a fresh name under runs/; an existing run is never silently overwritten."""
    if config.out:
        path = Path(config.out)
        if path.exists() and not path.is_dir():
            raise ValueError(f"run directory {str(path)!r} is a file; choose another OUT")
        if path.exists() and any(path.iterdir()):
            if not force:
                raise FileExistsError(f"run directory {str(path)!r} already exists; choose another OUT or pass --force")
            for name in (*RUN_FILES, "figures"):
                target = path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
    else:
        base = Path(root) / config.default_name()
        path, counter = base, 1
        while path.exists():
            counter += 1
            path = Path(f"{base}-{counter}")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _interrupts_deferred():
    """Hold SIGINT until the block ends, then raise KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


class RunLog:
    """metrics.jsonl and metrics.csv, appended and flushed one measured step at a time."""

    def __init__(self, path: Path):
        self._jsonl = open(path / "metrics.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv_file = open(path / "metrics.csv", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS, extrasaction="ignore")
        self._csv.writeheader()
        self.records: list[dict] = []

    def write(self, record: dict):
        """Append one measured step to both files and flush them."""
        line = json.dumps(_clean(record)) + "\n"
        head = {k: record.get(k) for k in ("step", "loss", "accuracy", "grad_norm", "nonfinite")}
        with _interrupts_deferred():  # a Ctrl-C here waits until the record is whole in both files
            self._jsonl.write(line)
            self._jsonl.flush()
            self._csv.writerows({**head, **layer} for layer in record["layers"])
            self._csv_file.flush()
            self.records.append(record)

    def close(self):
        self._jsonl.close()
        self._csv_file.close()


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
    """Train, measure and write the run directory; return the summary (see ARCHITECTURE.md)."""
    from . import report  # matplotlib is imported only when figures are drawn

    config.validate()
    dtype = np.dtype(config.dtype)
    started = time.perf_counter()
    dataset = data.load(config.data, dtype=dtype)  # before the run directory: bad data parameters write nothing
    path = prepare_run_dir(config, force=force)
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
        dtype=dtype,
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
    (path / "config.json").write_text(json.dumps(_clean(resolved), indent=2) + "\n")

    log = RunLog(path)
    status, message, steps_done = "completed", "", 0
    rng = np.random.default_rng(batch_seed)
    batches = data.batches(dataset, config.batch_size, rng)
    bar = _progress_bar(config.steps, progress)
    test_loss = test_accuracy = None
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
                    log.write({"step": step, "loss": loss_value, "accuracy": accuracy(logits, yb), **stats})
                    status, message = "diverged", f"diverged at step {step}: the loss is {loss_value}"
                    break
                optimizer.step()
                steps_done = step + 1
                if probe.record is not None:
                    record = {"step": step, "loss": loss_value, "accuracy": accuracy(logits, yb), **probe.record}
                    if step % config.eval_every == 0 or step == last_step:
                        test_loss, test_accuracy = evaluate(model, dataset.x_test, dataset.y_test)
                        record.update(test_loss=test_loss, test_accuracy=test_accuracy)
                    record["time"] = time.perf_counter() - started
                    log.write(record)
                    if record["nonfinite"]:
                        status, message = "diverged", f"diverged at step {step}: non-finite gradients"
                        break
                    bar.set_postfix_str(_postfix(record), refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        status, message = "interrupted", f"interrupted by the user after {steps_done} steps"
    finally:
        bar.close()
        log.close()
        probe.detach()

    with np.errstate(all="ignore"):
        final = {}
        if status != "diverged":
            final["train_loss"], final["train_accuracy"] = evaluate(model, dataset.x_train, dataset.y_train)
            final["test_loss"], final["test_accuracy"] = evaluate(model, dataset.x_test, dataset.y_test)
    summary = summarize(config, log.records, status, message, steps_done, final, theory)
    summary["wall_time_s"] = time.perf_counter() - started
    summary["files"] = sorted(p.name for p in path.iterdir()) + ["summary.json"]
    if config.figures:
        try:
            summary["figures"] = report.figures(path, log.records, summary)
        except Exception as error:  # figures are a convenience: a plotting failure must not lose the run
            summary["figures_error"] = f"{type(error).__name__}: {error}"
    # Atomic: a sweep treats a run as complete once summary.json exists, so it must never be half written.
    partial = path / "summary.json.partial"
    partial.write_text(json.dumps(_clean(summary), indent=2) + "\n")
    os.replace(partial, path / "summary.json")
    summary["path"] = str(path)
    return summary


def summarize(config, records, status, message, steps_done, final, theory) -> dict:
    """The summary: status, final numbers, r and verdict at step 0 and at the end, theory beside them."""
    summary = {"status": status, "message": message, "steps_done": steps_done, "steps_requested": config.steps}
    summary.update(final)
    if records:
        summary["final_loss"], summary["final_accuracy"] = records[-1]["loss"], records[-1]["accuracy"]
        # A diverged run's last record may hold no delta norms (the step was not measured): use the last that does.
        measured = [r for r in records if not math.isnan(first_last_ratio(r))] or records
        for key, record in (("init", records[0]), ("final", measured[-1])):
            ratio = first_last_ratio(record)
            summary[f"ratio_{key}"] = ratio
            summary[f"per_layer_factor_{key}"] = per_layer_factor(ratio, config.depth)
            summary[f"step_{key}"] = record["step"]
        summary["verdict"] = verdict_of(summary["ratio_init"], records[0]["nonfinite"])
        # A run that diverged ended with non-finite numbers: that is the exploding end, whatever r was before.
        diverged = status == "diverged"
        summary["verdict_final"] = (
            "exploding" if diverged else verdict_of(summary["ratio_final"], records[-1]["nonfinite"])
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
        "verdict": verdict_of(prediction.ratio_first_last),
    }


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc="training",
        unit="step",
        disable=not enabled,
        mininterval=0.25,
        dynamic_ncols=True,
        file=sys.stderr,
        leave=False,
    )


def _postfix(record: dict) -> str:
    ratio = first_last_ratio(record)
    return f"loss={record['loss']:.3f} acc={record['accuracy']:.2f} r={ratio:.1e}"


def open_records(path) -> list[dict]:
    """Read a run's metrics.jsonl (null -> nan)."""
    records = []
    with open(Path(path) / "metrics.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records
