"""Measurement attached from outside the training loop: per-layer probes through hooks (probes.py), the gradient's
signal-to-noise ratio across a batch (gradient_noise.py), the Jacobian's singular values at step 0 (jacobian.py), and
the format of the records they fill (records.py: fields, metrics.jsonl and metrics.csv)."""
