import os

import pytest
from hypothesis import HealthCheck, settings

# CI machines are shared and noisy: no per-example deadline; a fixed, moderate number of examples.
settings.register_profile(
    "default", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("thorough", deadline=None, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# One finished tiny run for the tests that only read it (the terminal report, Run's members, report.html): made
# once per test process. Tests must not change it; one that needs its own run makes it.
FINISHED_RUN = dict(depth=4, width=8, act="relu", init="he_normal", steps=30, batch_size=16, data="spirals:n=200",
                    log_every=5, eval_every=10)  # fmt: skip


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """(run directory, summary) of a completed FINISHED_RUN with its figures, report.html and checkpoint."""
    from tinygrad_act.lab.run.experiment import Config, run

    path = tmp_path_factory.mktemp("finished") / "run"
    return path, run(Config(**FINISHED_RUN, out=str(path)), progress=False)
