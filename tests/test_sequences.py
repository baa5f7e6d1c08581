"""The sequence tasks (lab/data/sequences.py) and how targets are scored (lab/data/tasks.py)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_act import Tensor
from tinygrad_act.common.errors import UsageError
from tinygrad_act.lab import data
from tinygrad_act.lab.data import sequences, tasks


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


@given(seq_len=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_adding_marks_one_step_in_each_half_and_its_target_is_the_sum_of_the_marked_values(seq_len, seed):
    x, y, x_test, y_test = sequences.adding(np.random.default_rng(seed), seq_len=seq_len, n_train=7, n_test=3)
    assert x.shape == (7, seq_len, 2) and x_test.shape == (3, seq_len, 2) and y.shape == (7,)
    half = seq_len // 2
    values, markers = x[:, :, 0], x[:, :, 1]
    assert np.all((values >= 0) & (values < 1))
    assert set(np.unique(markers)) <= {0.0, 1.0}
    assert np.all(markers[:, :half].sum(axis=1) == 1) and np.all(markers[:, half:].sum(axis=1) == 1)
    np.testing.assert_array_equal(y, (values * markers).sum(axis=1))


def test_adding_loads_unstandardized_with_float_targets_as_a_regression_over_its_seq_len():
    ds = data.load("adding:seq_len=12,n_train=50,n_test=20", seed=3)
    assert ds.task == "regression" and ds.num_classes == 0 and ds.num_outputs == 1
    assert ds.seq_len == 12 and ds.num_features == 2 and ds.x_train.shape == (50, 12, 2)
    assert ds.y_train.dtype == np.float64 and ds.y_train.shape == (50,)
    assert set(np.unique(ds.x_train[:, :, 1])) == {0.0, 1.0}  # the markers kept their 0/1: not standardized
    again = data.load("adding:seq_len=12,n_train=50,n_test=20", seed=3)
    np.testing.assert_array_equal(ds.x_test, again.x_test)
    np.testing.assert_array_equal(ds.y_test, again.y_test)


def test_adding_chance_is_a_sixth_of_mse_and_about_eight_percent_within_the_tolerance():
    ds = data.load("adding:seq_len=4,n_train=20000,n_test=20000", seed=0)
    guess = tasks.chance(ds.task, ds.num_classes, ds.y_train, ds.y_test)
    assert guess["loss"] == pytest.approx(sequences.ADDING_CHANCE_MSE, rel=0.03)
    # The sum of two U(0, 1) has density 1 - |s - 1| near 1: P(|s - 1| <= 0.04) = 0.08 - 0.04^2 = 0.0784.
    assert guess["accuracy"] == pytest.approx(0.0784, abs=0.01)


@given(length=st.integers(1, 4), gap=st.integers(1, 6), symbols=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_copy_shows_the_symbols_then_blanks_a_delimiter_and_recall_blanks_and_its_targets_are_the_symbols(
    length, gap, symbols, seed
):
    seq_len = 2 * length + gap
    x, y, _, _ = sequences.copy(np.random.default_rng(seed), seq_len=seq_len, length=length, symbols=symbols,
                                n_train=5, n_test=2)  # fmt: skip
    assert x.shape == (5, seq_len, symbols + 2) and y.shape == (5, length)
    np.testing.assert_array_equal(x.sum(axis=2), 1.0)  # one-hot at every step
    kinds = x.argmax(axis=2)
    blank, delimiter = symbols, symbols + 1
    np.testing.assert_array_equal(kinds[:, :length], y)
    assert np.all(kinds[:, length : seq_len - length - 1] == blank)
    assert np.all(kinds[:, seq_len - length - 1] == delimiter)
    assert np.all(kinds[:, seq_len - length :] == blank)
    assert np.all((y >= 0) & (y < symbols))


def test_copy_is_a_per_step_task_with_one_label_per_recall_step_and_the_declared_classes():
    ds = data.load("copy:seq_len=9,length=3,symbols=4,n_train=2,n_test=2")
    assert ds.task == "per_step" and ds.num_classes == 4 and ds.y_train.shape == (2, 3)
    assert data.check("copy:seq_len=9,length=3,symbols=4").targets == 3


def test_copy_refuses_a_sequence_too_short_to_hold_symbols_delimiter_and_recall_naming_the_least_seq_len():
    with pytest.raises(UsageError, match=r"seq_len >= 11"):
        data.check("copy:seq_len=10,length=5")


def test_mnist1d_seq_is_mnist1d_standardized_and_read_one_value_per_step():
    sequence = data.load("mnist1d_seq:n_train=60,n_test=20", seed=1)
    flat = data.load("mnist1d:n_train=60,n_test=20", seed=1)
    assert sequence.x_train.shape == (60, 40, 1) and sequence.task == "classification"
    np.testing.assert_array_equal(sequence.x_train[:, :, 0], flat.x_train)
    np.testing.assert_array_equal(sequence.y_test, flat.y_test)
    assert data.check("mnist1d_seq:seq_len=25").seq_len == 25


@pytest.mark.parametrize(
    "spec, task, seq_len",
    [
        ("adding:seq_len=7", "regression", 7),
        ("copy:seq_len=30", "per_step", 30),
        ("mnist1d_seq", "classification", 40),
    ],  # fmt: skip
)
def test_sequence_shapes_declare_the_sequence_length_and_the_task(spec, task, seq_len):
    shape = data.check(spec)
    assert (shape.task, shape.seq_len) == (task, seq_len)


def test_flat_datasets_are_classification_without_a_sequence_length():
    ds = data.load("spirals:n=100")
    assert ds.task == "classification" and ds.seq_len == 0 and ds.num_outputs == ds.num_classes
    assert data.check("spirals").seq_len == 0


# ---- tasks: the loss and accuracy of each kind of target ---------------------------------------------------
def test_regression_loss_is_the_mean_squared_error_of_one_output_per_example():
    outputs, y = np.array([[1.0], [0.5], [2.0]]), np.array([1.5, 0.5, 1.0])
    loss = tasks.loss("regression", Tensor(outputs), y)
    assert loss.item() == pytest.approx(np.mean((outputs[:, 0] - y) ** 2))


def test_regression_accuracy_counts_predictions_within_the_tolerance_as_right():
    y = np.array([1.0, 1.0, 1.0, 1.0])
    outputs = np.array([[1.03], [1.05], [0.97], [0.9]])  # tolerance 0.04: two within, two beyond
    assert tasks.accuracy("regression", outputs, y) == 0.5


def test_per_step_loss_and_accuracy_average_over_every_labelled_step():
    y = np.array([[0, 1], [2, 2]])  # two examples, two steps each: rows of outputs are (example, step)
    logits = np.full((4, 3), -5.0)
    logits[[0, 1, 2, 3], [0, 1, 2, 0]] = 5.0  # the last step of the second example is wrong
    assert tasks.accuracy("per_step", logits, y) == 0.75
    per_row = [-(logits[i, label] - math.log(np.exp(logits[i]).sum())) for i, label in enumerate(y.reshape(-1))]
    assert tasks.loss("per_step", Tensor(logits), y).item() == pytest.approx(np.mean(per_row))


def test_classification_chance_is_uniform_guessing():
    guess = tasks.chance("classification", 8, np.zeros(3), np.zeros(3))
    assert guess == {"accuracy": 1 / 8, "loss": pytest.approx(math.log(8))}
