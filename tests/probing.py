"""One measured training step, as several test modules need it: an SGD step of ``model`` on (x, y) with a
LayerProbe attached; returns the probe's record (its per-layer statistics, after the update)."""

from tinygrad_act.engine.tensor import Tensor
from tinygrad_act.lab.measure.probes import LayerProbe
from tinygrad_act.nn.modules import cross_entropy
from tinygrad_act.nn.optim import SGD


def measured_step(model, x, y, lr: float = 0.1) -> dict:
    """The record of one measured SGD step (forward, cross-entropy, backward, update)."""
    optimizer = SGD(model.parameters(), lr=lr)
    probe = LayerProbe(model, optimizer)
    loss = cross_entropy(model(Tensor(x)), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return probe.record
