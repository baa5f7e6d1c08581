"""The laboratory: data, probes, mean-field theory, run directories, experiments, sweeps and their reports."""
