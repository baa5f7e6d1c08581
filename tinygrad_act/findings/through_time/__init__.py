"""The findings through time (recurrent nets on the adding problem): vanishing_time (tanh RNN, LSTM, GRU as T grows),
exploding_time (Pascanu's condition and clipping), irnn (identity-initialized ReLU RNNs); runs.py holds what they
share."""

from . import exploding_time, irnn, vanishing_time

__all__ = ["exploding_time", "irnn", "vanishing_time"]
