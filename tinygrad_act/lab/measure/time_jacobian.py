"""The singular values of the state Jacobian through time, ∂s_T/∂s_1, at step 0: the recurrent analogue of
jacobian.py's dz_L/dz_1.

s_t is the state a recurrent layer carries from step t to t + 1: h_t for an RNN or a GRU, (h_t, c_t) for an LSTM
(2H values: the cell state is where an LSTM carries its gradient). ∂s_T/∂s_1 = J_T ... J_2 with J_(t+1) =
∂s_(t+1)/∂s_t, each measured with the engine as jacobian.py measures a block: S copies of s_t (S the state's
size) go through the module's own step (``module.cell``) with x_(t+1) as one batch whose leaf is the state; one
backward with the identity as upstream gradient leaves row i of J_(t+1) in row i of the leaf's gradient. The steps
run in float64, the weights are the module's (their ``.grad`` is put back as it was), and the product's singular
values come from product_svd.py, accurate to relative 1e-7 however many decades they span (a vanishing RNN's
product reaches far below float64's 1e-308), exact zeros (ReLU units off) counted as such.

Which examples: the first EXAMPLES of the first training batch; the summary has jacobian.summarize's fields, with
``of`` naming the product, ``state`` its size S and ``steps`` T.
"""

from __future__ import annotations

import numpy as np

from ...engine.tensor import Tensor, concatenate
from . import jacobian, product_svd

EXAMPLES = 2
# The cost grows like T S^3 per example (a QR of S x S per step): measured by default only up to this T S^3.
MAX_WORK = 100 * 128**3


def wanted(setting, steps: int, state_size: int) -> bool:
    """Whether a run measures ∂s_T/∂s_1: ``setting`` (the run's ``jacobian``) if set, else when T >= 2 and the work
    T S^3 is at most MAX_WORK."""
    if setting is not None:
        return bool(setting) and steps >= 2
    return steps >= 2 and steps * state_size**3 <= MAX_WORK


def state_size(module) -> int:
    """S: the values a recurrent layer carries per example (H, or 2H for an LSTM's (h, c))."""
    return module.hidden_size * len(module.CARRIED)


def factors(module, x: np.ndarray) -> list[np.ndarray]:
    """J_2, ..., J_T for one example ``x`` of shape (T, F), input side first: ∂s_T/∂s_1 = F[-1] @ ... @ F[0]
    (the module's parameters' ``.grad`` left as they were)."""
    x = np.asarray(x, dtype=np.float64)
    hidden, parts = module.hidden_size, len(module.CARRIED)
    size = hidden * parts
    start = [np.zeros((1, hidden)) for _ in range(parts)]
    out = []
    with jacobian.gradients_kept(module):  # the weights take part in the backward passes
        state = _step(module, x[0:1], start)  # s_1 from the zero state
        for t in range(1, len(x)):
            leaves = [Tensor(np.repeat(part, size, axis=0), requires_grad=True) for part in state]
            nxt = _step(module, np.repeat(x[t : t + 1], size, axis=0), leaves, graph=True)
            joined = nxt[0] if parts == 1 else concatenate(list(nxt), axis=1)
            joined.backward(np.eye(size))
            out.append(np.concatenate([leaf.grad for leaf in leaves], axis=1))
            state = [part.data[:1] for part in nxt]
    return out


def _step(module, x: np.ndarray, state: list, graph: bool = False) -> list:
    """The state after one step of the module's first layer from ``state`` (Tensors when ``graph``, else arrays)."""
    carried = state[0] if len(state) == 1 else tuple(state)
    result = module.cell(x, carried)
    result = [result] if len(state) == 1 else list(result)
    return result if graph else [part.data for part in result]


def measure(model, batch: np.ndarray, examples: int = EXAMPLES) -> dict:
    """Singular values of ∂s_T/∂s_1 for the first ``examples`` sequences of ``batch`` (B, T, F), pooled."""
    module = model.recurrent
    with np.errstate(all="ignore"):
        chains = [factors(module, sequence) for sequence in batch[:examples]]
    if not all(np.all(np.isfinite(f)) for chain in chains for f in chain):
        return {"applies": False, "reason": "the Jacobian through time is not finite (the forward pass overflowed)"}
    entry = jacobian.summarize([product_svd.singular_values(chain) for chain in chains])
    entry.update(of="ds_T/ds_1", state=state_size(module), steps=batch.shape[1])
    return entry
