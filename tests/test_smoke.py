import numpy as np

from tinygrad_act import Tensor, Value


def test_readme_scalar_example_runs():
    a, b = Value(2.0), Value(-3.0)
    c = (a * b + a.tanh()) ** 2 / b.exp()
    c.backward()
    assert isinstance(a.grad, float) and isinstance(b.grad, float)


def test_readme_tensor_example_runs():
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((3, 5)), requires_grad=True)
    (x @ w).tanh().sum().backward()
    assert x.grad.shape == (4, 3) and w.grad.shape == (3, 5)
