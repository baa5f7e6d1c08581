"""The laboratory, one room per concern; imports run one way (ARCHITECTURE.md, checked by ``make lint``):

    sweep -> run -> show -> measure -> theory | data -> stats

- ``data/``     datasets: built-ins from a seed, official MNIST-1D, your files and arrays
- ``theory/``   mean field, the correlation map, the Jacobian spectrum's moments and density
- ``measure/``  probes, gradient noise, the Jacobian at step 0, the records they fill
- ``show/``     number format, plot style, run figures, the terminal report, report.html, compare
- ``run/``      config, build -> train -> finish, the run directory, checkpoint, TensorBoard, ``tinygrad_act.run``
- ``sweep/``    grids of runs, workers, their tables and figures
- ``stats.py``  the rules every room shares: r, the per-layer factor, the verdict, the gains
"""
