"""The linear layer x @ W + b as one operation (tensor.linear): a speed path, equal to the composition in every number.

``x @ weight + bias`` records two nodes and keeps two output-sized arrays alive until backward; ``LINEAR`` is one
node that adds the bias in place. Its forward and backward also write into arrays given to them (``out=``), which
is how a captured step (capture.py) replays a layer without allocating. tests/test_tensor.py checks it against
the composition.
"""

from __future__ import annotations

import numpy as np

from .graph import Op


def _linear_forward(ctx, x, weight, bias=None, out=None):
    out = np.matmul(x, weight, out=out)
    return out if bias is None else np.add(out, bias, out=out)  # the bias added in place: out is fresh


def _linear_backward(node, g, out=(None, None, None)):
    """x @ W + b's gradients, each written into ``out`` where given (capture.py's arrays, allocated once)."""
    x, weight = node._parents[0], node._parents[1]
    gx = np.matmul(g, weight.data.T, out=out[0]) if x._requires_grad else None
    # Every leading axis of x is a batch axis: flattened into one (a 2-d x is used as it is).
    gw = None
    if weight._requires_grad:
        xs, gs = (x.data, g) if g.ndim == 2 else (x.data.reshape(-1, x.data.shape[-1]), g.reshape(-1, g.shape[-1]))
        gw = np.matmul(xs.T, gs, out=out[1])
    gb = g  # the bias's: _fit_grad sums it over the axes the bias was broadcast along ...
    if out[2] is not None and out[2].ndim == 1:  # ... or, into out, summed here over every batch axis
        gb = np.add.reduce(g, axis=tuple(range(g.ndim - 1)), out=out[2])
    return gx, gw, gb


def always(node) -> bool:
    """An Op's ``forward_out``/``backward_out`` for ops that write into the arrays given for every node."""
    return True


LINEAR = Op("linear", _linear_forward, _linear_backward, forward_out=always, backward_out=always)
