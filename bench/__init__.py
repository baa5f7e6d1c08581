"""Benchmarks of tinygrad_act against micrograd, hand-written numpy and PyTorch (run with ``bench/run.py``)."""
