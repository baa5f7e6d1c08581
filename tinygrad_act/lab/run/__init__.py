"""One run's lifecycle: its settings (config.py), build -> train -> finish (experiment.py), its directory claimed and
locked (rundir.py), checkpoint and resume (checkpoint.py), TensorBoard (tensorboard.py), and the Python entrance
``tinygrad_act.run`` (api.py)."""
