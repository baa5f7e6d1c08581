"""Plug-in results are checked before the run directory exists (issue 18, item 6): an activation or derivative of
another shape or type, a composition that returns something else than the engine's node, an initializer's matrix
of another shape, type or with non-finite entries, a dataset generator's arrays; objects and callables given to
``run()``; the registration signatures the README shows."""

import numpy as np
import pytest
from hostile import TINY, call, refused, succeeded

import tinygrad_act
from tinygrad_act import Tensor, Value, activations
from tinygrad_act import init as initializers
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab.data import datasets

pytestmark = pytest.mark.usefixtures("data_cache")


@pytest.fixture
def registered():
    names = []

    def register(module, name, *args, **kwargs):
        module.register(name, *args, **kwargs)
        names.append((module, name))
        return name

    yield register
    for module, name in names:
        (module._REGISTRY.unregister if module is not activations else activations.unregister)(name)


ACTIVATIONS = {
    "forward of shape (1,)": dict(forward=lambda x: np.ones(1), derivative=lambda x: np.ones_like(x)),
    "derivative a scalar": dict(forward=np.tanh, derivative=lambda x: 0.5),
    "forward transposed": dict(forward=lambda x: np.tanh(x).T, derivative=lambda x: 1 / np.cosh(x) ** 2),
    "forward of text": dict(forward=lambda x: np.full(x.shape, "a"), derivative=lambda x: np.ones_like(x)),
    "forward complex": dict(forward=lambda x: x + 1j, derivative=lambda x: np.ones_like(x)),
    "forward None": dict(forward=lambda x: None, derivative=lambda x: np.ones_like(x)),
    "forward raising": dict(forward=lambda x: 1 / 0, derivative=lambda x: np.ones_like(x)),
    "derivative a list of another length": dict(forward=np.tanh, derivative=lambda x: [1.0]),
    "compose returning numpy": dict(compose=lambda x: np.tanh(x.data)),
    "compose returning a float": dict(compose=lambda x: 0.5),
    "compose returning another shape": dict(compose=lambda x: x.tanh().sum()),
    "compose raising": dict(compose=lambda x: x.no_such_method()),
}


@pytest.mark.parametrize("case", list(ACTIVATIONS))
def test_an_activation_whose_results_do_not_fit_is_refused_before_the_run_directory(tmp_path, registered, case):
    name = registered(activations, "hostile", **ACTIVATIONS[case])
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **TINY, act=name, out=str(out)), name)
    assert not out.exists()


@pytest.mark.parametrize("case", ["forward of shape (1,)", "derivative a scalar", "compose returning numpy"])
def test_an_activation_of_another_shape_is_an_error_not_a_broadcast(registered, case):
    act = activations.get(registered(activations, "hostile", **ACTIVATIONS[case]))
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    with pytest.raises(UsageError, match="hostile"):
        act(x).sum().backward()


def test_an_activation_of_another_shape_is_an_error_on_the_scalar_engine_too(registered):
    act = activations.get(registered(activations, "hostile", **ACTIVATIONS["forward of shape (1,)"]))
    with pytest.raises(UsageError, match="hostile"):
        act(Value(0.3))


INITIALIZERS = {
    "transposed": lambda fan_in, fan_out, rng: rng.normal(size=(fan_out, fan_in)),
    "text": lambda fan_in, fan_out, rng: np.full((fan_in, fan_out), "w"),
    "complex": lambda fan_in, fan_out, rng: np.ones((fan_in, fan_out)) * 1j,
    "nan": lambda fan_in, fan_out, rng: np.full((fan_in, fan_out), np.nan),
    "None": lambda fan_in, fan_out, rng: None,
    "a scalar": lambda fan_in, fan_out, rng: 0.1,
    "raising": lambda fan_in, fan_out, rng: rng.no_such_method(),
}


@pytest.mark.parametrize("case", list(INITIALIZERS))
def test_an_initializer_whose_matrix_does_not_fit_is_refused_in_validation(tmp_path, registered, case):
    name = registered(initializers, "hostile", INITIALIZERS[case])
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **TINY, init=name, out=str(out)), name)
    assert not out.exists()


def test_an_initializer_registers_as_the_readme_shows_a_draw_function_with_its_parameters(tmp_path, registered):
    def scaled(fan_in, fan_out, rng, scale=1.0):
        return scale * rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in)

    name = registered(initializers, "scaled", scaled)
    weights = initializers.get(f"{name}:scale=2")(3, 5, np.random.default_rng(0))
    assert weights.shape == (3, 5)
    run = succeeded(call(tinygrad_act.run, **TINY, init=f"{name}:scale=0.5", out=str(tmp_path / "run")))
    assert run.config["init_resolved"] == {"name": "scaled", "params": {"scale": 0.5}}


def test_a_list_of_the_right_shape_is_a_matrix(registered, tmp_path):
    name = registered(initializers, "listed", lambda fan_in, fan_out, rng: [[0.1] * fan_out] * fan_in)
    succeeded(call(tinygrad_act.run, **TINY, init=name, out=str(tmp_path / "run")))


@pytest.mark.parametrize(
    ("given", "recorded"),
    [(activations.get("tanh"), "tanh"), (activations.get("leaky_relu", alpha=0.2), "leaky_relu:alpha=0.2")],
    ids=["tanh", "leaky_relu"],
)
def test_run_takes_an_activation_object_as_its_spec(tmp_path, given, recorded):
    run = succeeded(call(tinygrad_act.run, **TINY, act=given, out=str(tmp_path / "run")))
    assert run.config["act"] == recorded


def test_run_takes_an_initializer_object_as_its_spec(tmp_path):
    run = succeeded(call(tinygrad_act.run, **TINY, init=initializers.get("he_normal"), out=str(tmp_path / "run")))
    assert run.config["init_resolved"]["name"] == "he_normal"


@pytest.mark.parametrize("setting", ["optimizer", "data"])
def test_run_refuses_a_plain_function_where_none_can_be_registered(tmp_path, setting):
    line = refused(call(tinygrad_act.run, **{**TINY, setting: lambda x: x}, out=str(tmp_path / "run")), setting)
    assert "function" in line


def test_run_takes_plain_functions_for_act_and_init_and_checks_their_results(tmp_path):
    def odd_act(x):
        return x.sum()  # another shape: refused before the run directory exists

    def odd_init(fan_in, fan_out, rng):
        return np.ones((fan_out, fan_in))  # transposed: refused too

    for setting, function in (("act", odd_act), ("init", odd_init)):
        out = tmp_path / setting
        refused(call(tinygrad_act.run, **{**TINY, setting: function}, out=str(out)), function.__name__)
        assert not out.exists()


GENERATORS = {
    "shapes that disagree": lambda rng, n=40: (
        rng.normal(size=(n, 3)),
        np.zeros(n - 1, int),
        rng.normal(size=(9, 3)),
        np.zeros(9, int),
    ),  # fmt: skip
    "labels beyond the classes": lambda rng, n=40: (
        rng.normal(size=(n, 3)),
        np.arange(n) % 2 + 5,
        rng.normal(size=(9, 3)),
        np.arange(9) % 2 - 3,
    ),  # fmt: skip
    "nan inputs": lambda rng, n=40: (
        np.full((n, 3), np.nan),
        np.arange(n) % 2,
        rng.normal(size=(9, 3)),
        np.arange(9) % 2,
    ),  # fmt: skip
    "fractional labels": lambda rng, n=40: (
        rng.normal(size=(n, 3)),
        np.arange(n) % 2 + 0.5,
        rng.normal(size=(9, 3)),
        np.arange(9) % 2,
    ),  # fmt: skip
    "raising": lambda rng, n=40: rng.no_such_method(),
    "not four arrays": lambda rng, n=40: (rng.normal(size=(n, 3)),),
}


@pytest.mark.parametrize("case", list(GENERATORS))
def test_a_dataset_generator_whose_arrays_do_not_fit_is_one_line_naming_it(tmp_path, registered, case):
    name = registered(datasets, "hostile", GENERATORS[case])
    out = tmp_path / "run"
    refused(call(tinygrad_act.run, **TINY | {"data": name}, out=str(out)), name)
    assert not out.exists()


def test_an_activation_returning_integers_is_cast_to_the_inputs_dtype(registered):
    act = activations.get(registered(activations, "step", forward=lambda x: (x > 0).astype(int),
                                     derivative=lambda x: np.zeros(x.shape, int)))  # fmt: skip
    assert act.forward(np.array([-1.0, 1.0], np.float32)).dtype == np.float32
