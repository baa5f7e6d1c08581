"""``watch(model)``: a user's PyTorch model measured in its own training loop, written as a run directory.

    lab = tinygrad_act.watch(model, out="runs/my-model")
    for x, y in loader:
        loss = loss_fn(model(x), y)
        opt.zero_grad(); loss.backward(); lab.step(loss); opt.step()
    lab.close()          # or: with tinygrad_act.watch(model) as lab: ...

Every call of ``lab.step`` is one training step (0, 1, 2, ...); steps ``0, every, 2·every, ...`` are measured.
One global forward hook (torch's register_module_forward_hook, handing each call to the watched module's own
handler) is attached only for a measured step (other steps run no probe code but one call and one comparison in
``step``). At a measured step, the hooks keep each Linear's input, its output z (copied: an in-place
activation overwrites it), the weights the forward pass used (copied: the optimizer updates them in place), the
activation's output, and a tensor hook keeps dL/dz; ``lab.step`` then turns them, as numpy, into a record by
lab/measure/statistics.py, the rules a native run uses (probes.py's docstring defines each field). A recurrent
module (recurrent.py) is measured through time by lab/measure/through_time.py's statistics: its layers come first
in a record's ``layers``, then the Linears, and the record gains ``through_time`` (its first layer's). The update
ratio of a measured step is known at the next call of ``lab.step`` (or ``close``): the weights then are those the
optimizer left. The run directory is claimed as a native run's is (lab/run/rundir.py: fresh, or ``force`` over a
run of this laboratory, never over anyone else's files) and locked until ``close``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time

import numpy as np

from ..common.errors import UsageError
from ..common.validate import Setting, check_all
from ..lab.measure.records import RunLog
from ..lab.measure.statistics import Histograms, LayerArrays, step_statistics, update_ratio
from ..lab.measure.through_time import joint_update_ratio
from ..lab.run import rundir, threads
from ..lab.run.tensorboard import require as require_tensorboard
from ..nn import activations
from ..nn.optim import squared_norm
from . import board, finish, functional, recurrent
from . import model as reading

_SETTINGS = (  # watch's own arguments, through the one validation every entrance uses (common/validate.py)
    Setting("every", int, 10, "measure every N steps", low=1),
    Setting("force", bool, False, "replace a run of this laboratory at out"),
    Setting("jacobian", bool, True, "the singular values of dz_L/dz_1 at step 0"),
    Setting("figures", bool, True, "the PNG figures at close"),
    Setting("tensorboard", bool, False, "TensorBoard event files in out/tensorboard/"),
)


def watch(model, out: str | None = None, every: int = 10, *, force: bool = False, jacobian: bool = True,
          figures: bool = True, tensorboard: bool = False) -> Watch:  # fmt: skip
    """Measure ``model`` (a torch.nn.Module) every ``every`` steps of a training loop into the run directory
    ``out`` (default: a fresh ``runs/torch-<act>-d<depth>``); ``force`` replaces a run there. ``jacobian``: the
    singular values of dz_L/dz_1 at step 0 (torch.func); ``figures``: the PNG figures at ``close``;
    ``tensorboard``: TensorBoard event files in ``out/tensorboard/`` as a native run's (board.py; tensorboardX)."""
    return Watch(model, out, every, force=force, jacobian=jacobian, figures=figures, tensorboard=tensorboard)


class Watch:
    """A watched model's measurement and run directory (``watch``); ``step(loss)`` after each backward pass."""

    def __init__(self, model, out=None, every=10, *, force=False, jacobian=True, figures=True, tensorboard=False):
        try:
            import torch  # noqa: F401  (the optional extra: one line if it is missing)
        except ImportError:
            raise UsageError("watch needs PyTorch: pip install 'tinygrad_act[torch]'") from None
        given = check_all(_SETTINGS, {"every": every, "force": force, "jacobian": jacobian, "figures": figures,
                                      "tensorboard": tensorboard}, "watch")  # fmt: skip
        self.every, force = given.pop("every"), given.pop("force")
        self.model = model
        self.layout = reading.read(model)
        widths = [max(linear.in_features, linear.out_features) for linear in self.layout.linears]
        widths += [w.module.hidden_size for w in self.layout.recurrents]
        self._one_thread = threads.statistics_threads(max(widths))  # the statistics on one BLAS thread, not the loop
        self.options = given  # jacobian, figures, tensorboard
        if tensorboard:
            require_tensorboard()  # before anything is written: one line saying how to install it
        self.steps = 0  # lab.step calls so far: the index of the coming step
        self.status, self.message = "completed", ""
        self.first = None  # what the first measured step showed (the chain, the theory's inputs, the Jacobian)
        self.summary = None
        self._histograms = Histograms()
        self._pending = None  # (record, the weights its forward used): its update ratio comes at the next step
        self._hooks = []
        self._started = time.perf_counter()
        self._stack = contextlib.ExitStack()
        name = f"torch-{self._name_act()}-d{len(self.layout.linears) - 1}"
        if self.layout.recurrents:  # as a native recurrent run's rnn-<cell>-...
            name = f"torch-rnn-{self.layout.recurrents[0].cell}"
        self.path = self._stack.enter_context(rundir.prepare(out or "", name, force=force))
        self._board = board.Probe(self._histograms) if tensorboard else None
        # what the measured step's global forward hook calls for each module of the model (id -> hook)
        watched = [(linear, self._on_linear(i)) for i, linear in enumerate(self.layout.linears)]
        watched += [(module, self._on_activation) for module in self.layout.activations] + [(model, self._on_model)]
        self._handlers = {id(module): (module, hook) for module, hook in watched}
        self._log = board.open_log(self, self._board) if tensorboard else RunLog(self.path)
        self._arm()

    # ---- the user's loop ----------------------------------------------------------------------------------------
    def step(self, loss, accuracy: float | None = None) -> None:
        """One training step done up to its backward pass (before ``optimizer.step()``): measured if it is one of
        every ``every``; ``loss`` a tensor or number, ``accuracy`` the batch's if you have it."""
        if self.summary is not None:
            raise UsageError(f"watch of {str(self.path)!r} is closed: step() after close()")
        value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
        measured = (
            self._hooks
            and self._seen is not None
            and (any(s is not None for s in self._seen) or any(w.kept is not None for w in self.layout.recurrents))
        )
        recorded = self.status == "completed" and (measured or not math.isfinite(value))
        if recorded or self._pending is not None:  # an unmeasured step enters nothing
            with self._one_thread():
                self._settle_pending()
                if recorded:
                    self._record(value, accuracy, measured)
        self.steps += 1
        self._disarm()
        self._arm()

    def close(self) -> dict:
        """Finish the run directory (histograms, theory, figures, report.html, summary.json last) and release it;
        the summary. Calling it again returns the same summary."""
        if self.summary is not None:
            return self.summary
        self._disarm()
        try:
            with self._one_thread():
                self._settle_pending()
                self._log.close()
                self.summary = finish.finish(self)
        finally:
            self._stack.close()
        return self.summary

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None and self.status == "completed":  # the loop stopped early: the summary says how
            if issubclass(kind, KeyboardInterrupt):
                self.status, self.message = "interrupted", f"interrupted by the user after {self.steps} steps"
            else:
                self.status = "failed"
                self.message = f"the training loop raised {kind.__name__} after {self.steps} steps: {error}"
        self.close()

    @property
    def notes(self) -> list[str]:
        """What the lab could not measure or identify in this model (known after the first measured step)."""
        return list((self.first or {}).get("notes", self.layout.notes))

    @property
    def records(self) -> list[dict]:
        """The records logged so far (metrics.jsonl's)."""
        return self._log.records

    def _name_act(self) -> str:
        specs = set(self.layout.activations.values())
        return next(iter(specs)).split(":")[0] if len(specs) == 1 else "model"

    # ---- hooks: attached for a measured step only; they keep references and copies, no arithmetic ------------------
    def _arm(self) -> None:
        self._seen = None
        if self.status != "completed" or self.steps % self.every:
            return
        count = len(self.layout.linears)
        self._seen, self._deltas, self._specs = [None] * count, [None] * count, [None] * count
        self._outs, self._fed_by, self._shared = [None] * count, [None] * count, set()
        self._by_output, self._act_outputs, self._output_is_last = {}, {}, False
        self._nodes, self._functional = [None] * count, {}  # (z's, x's autograd node); index -> activation node
        from torch.nn.modules.module import register_module_forward_hook

        self._dispatch = dict(self._handlers)
        self._dispatch.update((id(w.module), (w.module, hook)) for w in self.layout.recurrents
                              if (hook := w.arm()) is not None)  # fmt: skip
        # one global forward hook for the step, not one per module: attaching and removing forty hooks on every
        # measured step cost more than the dictionary look-up a module call pays here (bench/run.py --only watch)
        self._hooks = [register_module_forward_hook(self._on_module)]

    def _on_module(self, module, inputs, output):
        entry = self._dispatch.get(id(module))
        if entry is not None and entry[0] is module:
            entry[1](module, inputs, output)

    def _disarm(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    def _on_linear(self, index):
        import torch

        def hook(module, inputs, z):
            if not (torch.is_grad_enabled() and z.requires_grad):  # an evaluation under no_grad: not the step
                return
            if self._seen[index] is not None:
                self._shared.add(index)
                return
            x = inputs[0]
            source = self._act_outputs.get(id(x))
            self._fed_by[index] = source[0] if source is not None and source[1] is x else None
            self._seen[index] = (x.detach(), z.detach().clone(), module.weight.detach().clone())
            self._by_output[id(z)] = (index, z)
            self._nodes[index] = (z.grad_fn, x.grad_fn)
            z.register_hook(self._keep_delta(index))

        return hook

    def _keep_delta(self, index):
        def hook(grad):
            self._deltas[index] = grad.detach()

        return hook

    def _on_activation(self, module, inputs, output):
        seen = self._by_output.get(id(inputs[0]))
        if seen is None or seen[1] is not inputs[0] or self._specs[seen[0]] is not None:
            return
        index = seen[0]
        self._specs[index] = self.layout.activations[module]
        self._outs[index] = output.detach().clone() if getattr(module, "inplace", False) else output.detach()
        self._act_outputs[id(output)] = (index, output)

    def _on_model(self, module, inputs, output):
        last = self._by_output.get(id(output))
        self._output_is_last = last is not None and last[1] is output and last[0] == len(self.layout.linears) - 1
        hidden = zip(self._specs[:-1], self._seen[:-1])
        if self.first is not None and all(spec is not None or seen is None for spec, seen in hidden):
            return  # every hidden Linear's activation is known (the output's matters at the first step only)
        produced = {id(nodes[0]): index for index, nodes in enumerate(self._nodes) if nodes is not None}
        for index, (spec, node) in functional.identify(output, produced).items():
            if self._specs[index] is None:  # an activation called as a function (functional.py)
                self._specs[index], self._functional[index] = spec, node
        fed = {id(node): index for index, node in self._functional.items()}
        for index, nodes in enumerate(self._nodes):
            if nodes is not None and self._fed_by[index] is None and nodes[1] is not None:
                self._fed_by[index] = fed.get(id(nodes[1]))

    # ---- a measured step's record -----------------------------------------------------------------------------------
    def _record(self, loss: float, accuracy, measured: bool) -> None:
        if not math.isfinite(loss):
            self.status, self.message = "diverged", f"diverged at step {self.steps}: the loss is {loss}"
        if not measured:
            return
        if any(s is None for s in self._seen):
            missing = [self.layout.names[i] for i, s in enumerate(self._seen) if s is None]
            raise UsageError(f"watch: step {self.steps}'s forward pass did not use Linear {missing[0]} (with "
                             f"gradients enabled); every Linear of the model must take part in each step")  # fmt: skip
        layers, grads = self._arrays()
        with np.errstate(all="ignore"):  # an exploding step's statistics say inf or nan
            statistics = step_statistics(layers, list(grads.values()))
            recurrent_layers, times = self._through_time(grads)
        for entry in statistics["layers"]:
            entry["layer"] += len(recurrent_layers)
        statistics["layers"][:0] = recurrent_layers
        record = {"step": self.steps, "loss": loss, "accuracy": math.nan if accuracy is None else float(accuracy)}
        record.update(statistics)
        if times:
            record["through_time"] = times[0]
        if len(times) > 1:
            record["through_time_layers"] = times
        record["time"] = time.perf_counter() - self._started
        if self.first is None:
            self.first = finish.first_step(self, layers)
        if record["nonfinite"] and self.status == "completed":
            self.status, self.message = "diverged", f"diverged at step {self.steps}: non-finite gradients"
        if not times:  # a recurrent model's histograms are not drawn (as a native recurrent run's)
            outputs, deltas = [layer.out for layer in layers[:-1]], [layer.delta for layer in layers]
            self._histograms.observe(self.steps, outputs, deltas, copy=False)  # PyTorch's arrays, fresh each step
        pairs = [pair for w in self.layout.recurrents if w.kept is not None for pair in recurrent.weights_pairs(w)]
        shown = None
        if self._board is not None:  # TensorBoard's weight gradients: this step's, copied before the next backward
            hh = [grads.get(id(parameters[1])) for _, parameters in pairs]
            shown = board.copies(hh + [layer.weight_grad for layer in layers])
        self._pending = (record, pairs, [seen[2] for seen in self._seen], shown)  # the forward's weights (copies)

    def _through_time(self, grads: dict) -> tuple[list, list]:
        """The recurrent modules' layers' entries of the record and each layer's through_time (recurrent.py)."""
        layers, times = [], []
        if not any(watched.kept is not None for watched in self.layout.recurrents):
            return layers, times
        squares = {key: squared_norm(grad) for key, grad in grads.items()}
        for watched in self.layout.recurrents:
            if watched.kept is not None:
                entries, time = recurrent.entries(watched, len(layers) + 1, squares, grads)
                layers += entries
                times += time
        return layers, times

    def _arrays(self) -> tuple[list, list]:
        """Each Linear's LayerArrays (numpy) and every parameter's gradient (id(parameter) -> numpy), in the model's
        order."""
        grads = {id(p): _numpy(p.grad) for p in self.model.parameters() if p.grad is not None}
        last = len(self.layout.linears) - 1
        layers = []
        for index, linear in enumerate(self.layout.linears):
            x, z, weight = self._seen[index]
            spec = self._specs[index] if index < last else None
            rows = x.shape[0] if x.dim() == 2 else None  # rows are examples: the gradient's SNR is measured
            layers.append(LayerArrays(
                _numpy(weight).T,
                weight_grad=grads.get(id(linear.weight)),
                bias_grad=grads.get(id(linear.bias)) if linear.bias is not None else None,
                has_bias=linear.bias is not None,
                delta=None if self._deltas[index] is None else _rows(self._deltas[index]),
                inputs=_numpy(x) if rows else None,
                pre=_rows(z) if spec else None,
                out=self._output_rows(index, z) if spec else _rows(z),
                activation=_activation(spec) if spec else None,
            ))  # fmt: skip
        return layers, grads

    def _output_rows(self, index: int, z) -> np.ndarray:
        """f(z) of a hidden Linear: its activation module's output, or a function's computed by the registry."""
        if index in self._functional:
            return _activation(self._specs[index]).forward(_rows(z))
        return _rows(self._outs[index])

    def _settle_pending(self) -> None:
        """The pending measured step's update ratios (the weights now against those its forward used), logged."""
        if self._pending is None:
            return
        record, pairs, before, shown = self._pending
        self._pending = None
        with np.errstate(all="ignore"):
            for layer, (weights, parameters) in zip(record["layers"], pairs):
                layer["update_ratio"] = joint_update_ratio(weights, [_numpy(p) for p in parameters])
            for layer, weight, linear in zip(record["layers"][len(pairs) :], before, self.layout.linears):
                layer["update_ratio"] = update_ratio(_fan_in_first(weight), _fan_in_first(linear.weight.detach()))
        if self._board is not None:  # the weights after the update, as a native run's TensorBoard draws
            weights = [parameters[1] for _, parameters in pairs] + [linear.weight for linear in self.layout.linears]
            self._board.layers = board.layers([_numpy(w) for w in weights], shown)
        self._log.write(record)


@functools.lru_cache(maxsize=64)
def _activation(spec: str):
    """The registry's activation for a spec (read once: a measured step asks for it per layer)."""
    return activations.get(spec)


# From this many weights on, torch copies a weight into (fan_in, fan_out) order faster than numpy does: the norms of
# the update ratio read the weights in that order, and numpy's transposing copy (one in each norm of a transposed
# view) was most of a measured step at (20, 256, 128): 0.25 -> 0.18 ms per layer in float32, 0.48 -> 0.20 ms in
# float64 at 256 x 256, no gain up to 192 x 192 (where torch's call costs more than it saves)
TRANSPOSE_IN_TORCH = 256 * 256


def _fan_in_first(weight) -> np.ndarray:
    """A Linear's weight (out, in) as the lab's (fan_in, fan_out) array: the same numbers in the same order either
    way, a transposed view or (large) a copy made by torch in that order."""
    if weight.numel() >= TRANSPOSE_IN_TORCH:
        return _numpy(weight.t().contiguous())
    return _numpy(weight).T


def _numpy(tensor) -> np.ndarray:
    """A tensor as numpy on the CPU (half precisions as float32: numpy has no bfloat16)."""
    import torch

    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.detach().float()
    try:
        return tensor.numpy()  # a CPU tensor that needs no gradient (most of what a step keeps): a view, at once
    except (RuntimeError, TypeError):  # it needs a gradient, or lives on a GPU
        return tensor.detach().cpu().numpy()


def _rows(tensor) -> np.ndarray:
    """(examples, units): a sequence's positions count as examples."""
    array = _numpy(tensor)
    return array.reshape(-1, array.shape[-1])
