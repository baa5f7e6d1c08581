"""A grid of runs over any experiment parameters, run in parallel, resumable.

One run is the unit of work: it lives in ``<sweep dir>/runs/<name>/`` (the name spells its grid values).
A run is complete when its ``config.json`` holds the settings the sweep asks for now, its ``summary.json`` is
well formed and says ``completed`` or ``diverged``, and ``metrics.jsonl`` holds every record the summary
claims. Anything else (killed, interrupted, a summary cut short or of the wrong shape) is redone from scratch
when the sweep runs again, so a stopped sweep resumes where it stopped and a finished run is never redone.

A run directory whose ``config.json`` holds *other* settings (the sweep was run into this OUT before with
another INIT, WIDTH, STEPS, dataset ...; run names spell only the grid values) is never reused and never
overwritten: the sweep refuses before any run starts, with one line naming the run and the differing
settings. Choose another OUT, or remove the old runs to redo them. A run made from data or plug-ins that have
changed since (run/provenance.py) is redone. The sweep's directory, and each run's, is claimed as every run
directory is (run/rundir.py's ``claim``): never a folder this laboratory did not write.

While a sweep writes its directory it holds a lock on it (``files.locked``): a second sweep on the same OUT
stops at once with one line (shards of one sweep lock only their share, so machines can share one OUT), and
each run holds its own run lock. One Ctrl-C stops the whole
sweep: running runs end as ``interrupted`` (their summaries say so), no new run starts, exit code 130; SIGTERM
does the same with 143. Worker processes never outlive the sweep (see ``workers``).

Runs go to local worker processes (``jobs``; BLAS pinned to one thread per worker), to a Dask cluster
(``scheduler="tcp://host:port"``; an interrupt cancels the queued runs, a run already on a Dask worker
finishes there), or are split across machines with ``shard=(i, n)``.
Outputs: ``sweep.csv`` and ``sweep.md`` (one row per run) and figures (see tables.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import itertools
import re
import sys
from pathlib import Path

from ...common import errors, files
from ...common.errors import RunDirError, UsageError
from ...common.validate import spell
from ..measure.records import check_summary
from ..run import experiment, provenance, rundir  # experiment.run looked up at call time: tests count the runs
from ..run.config import SETTINGS, Config
from ..show import html, plots
from ..stats import shown_verdict
from . import workers
from .tables import ROW_FIELDS, figures, table_cells, write_tables

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
CONFIG_FIELDS = {s.name: s for s in SETTINGS if s.name != "out"}  # the schema (lab/run/config.py), out aside


@dataclasses.dataclass
class Sweep:
    """A grid (parameter -> values) and the settings every run shares."""

    grid: dict
    fixed: dict = dataclasses.field(default_factory=dict)
    name: str = "sweep"
    description: str = ""

    def __post_init__(self):
        if not self.grid:
            raise UsageError('a sweep needs a grid of at least one parameter (e.g. act = ["sigmoid", "relu"])')
        for key in (*self.grid, *self.fixed):
            if key not in CONFIG_FIELDS:
                raise UsageError(f"unknown sweep parameter {key!r}; choose from: {', '.join(CONFIG_FIELDS)}")
        for key, values in self.grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise UsageError(f"sweep parameter {key!r} needs a non-empty list of values, got {values!r}")
        # exactly the types the schema declares, as run() takes them: a TOML "false" is no boolean
        self.grid = {k: [CONFIG_FIELDS[k].check(v, "sweep grid") for v in values] for k, values in self.grid.items()}
        self.fixed = {k: CONFIG_FIELDS[k].check(v, "sweep setting") for k, v in self.fixed.items()}
        both = sorted(set(self.grid) & set(self.fixed))
        if both:
            raise UsageError(f"sweep parameter {both[0]!r} is both in the grid and fixed")

    @classmethod
    def from_text(cls, grid: dict, fixed: dict | None = None, name: str = "sweep", description: str = "") -> Sweep:
        """A sweep whose grid values are text, as a command line gives them (``{"depth": "2,3"}`` or a list of
        texts): each read by its setting's ``parse`` (``residual=false,true`` are booleans there)."""
        parsed = {}
        for key, values in grid.items():
            if key not in CONFIG_FIELDS:
                raise UsageError(f"unknown sweep parameter {key!r}; choose from: {', '.join(CONFIG_FIELDS)}")
            texts = split_values(values) if isinstance(values, str) else values
            parsed[key] = [CONFIG_FIELDS[key].parse(text) for text in texts]
        return cls(parsed, dict(fixed or {}), name, description)

    def points(self) -> list[dict]:
        """Every combination of the grid values, in a fixed order (the grid's key order, last key fastest)."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def configs(self, root: Path) -> list[tuple[str, Config]]:
        """(run name, validated Config) for every grid point, each with its run directory under ``root``."""
        runs, seen = [], {}
        for point in self.points():
            name = run_name(point)
            if name in seen:  # two runs in one directory would overwrite each other (or race, in parallel)
                raise UsageError(f"grid points {seen[name]} and {point} share the run directory {name!r}")
            seen[name] = point
            values = {"figures": False, **self.fixed, **point}  # per-run figures are slow; the sweep draws its own
            config = Config(**values, out=str(root / "runs" / name))
            runs.append((name, config.validate()))
        return runs


def split_values(text: str) -> list[str]:
    """Split ``a,b:x=1,y=2,c`` into ['a', 'b:x=1,y=2', 'c']: a ``k=v`` item belongs to the spec before it (activation
    specs use commas for their own parameters); blanks are dropped."""
    items = []
    for part in text.split(","):
        part = part.strip()
        if items and "=" in part and ":" not in part and ":" in items[-1]:
            items[-1] += "," + part
        elif part:
            items.append(part)
    return items


def run_name(point: dict) -> str:
    """A directory name that spells the grid values: ``act=relu,depth=20,seed=0`` -> ``act-relu_depth-20_seed-0``."""
    parts = [f"{key}-{value}" for key, value in point.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts)).replace("=", "")


def load_config(name_or_path: str) -> Sweep:
    """A named sweep (``vanishing_depth``: ./experiments/NAME.toml, else the package's own) or a TOML file's path.

    The file holds ``name``, ``description``, a ``[grid]`` table of lists and a ``[fixed]`` table.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.is_dir():
        candidates = [Path("experiments") / f"{name_or_path}.toml", _packaged_configs() / f"{name_or_path}.toml"]
        path = next((p for p in candidates if p.exists()), candidates[0])
    if path.is_dir():
        raise UsageError(f"sweep config {str(path)!r} is a directory; give a TOML file or a name from experiments/")
    if not path.exists():
        available = sorted(p.stem for p in _packaged_configs().glob("*.toml"))
        raise UsageError(f"no sweep config {name_or_path!r}; choose one of: {', '.join(available) or 'none found'}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    content = files.read_bytes(path, "sweep config")  # a regular file of a sane size, never a FIFO
    try:
        table = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError:  # a binary file: tomllib's own message would not say which one
        raise UsageError(f"{path}: not a TOML file (not valid UTF-8 text)") from None
    except (tomllib.TOMLDecodeError, RecursionError) as error:
        raise UsageError(f"{path}: {error or 'nested too deep'}") from None
    unknown = sorted(set(table) - {"name", "description", "grid", "fixed"})
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; valid keys: name, description, grid, fixed")
    return Sweep(
        table.get("grid", {}), table.get("fixed", {}), table.get("name", path.stem), table.get("description", "")
    )


def _packaged_configs() -> Path:
    """The named configs shipped in the package (package data ``configs/``: in a checkout, a link to
    experiments/), so ``pip install .`` alone can run ``sweep vanishing_depth``."""
    return Path(str(importlib.resources.files(__package__) / "configs"))


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> (1, 4): this machine runs every 4th run starting at index 1 (0-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise UsageError(f"bad shard {text!r}; write i/N with 0 <= i < N, e.g. 0/2")
    return int(match.group(1)), int(match.group(2))


DASK_CONNECT_TIMEOUT_S = 5


def differing_settings(config: Config, stored: dict) -> list[str]:
    """The settings in which a run directory's config.json differs from ``config`` (derived fields ignored)."""
    default = Config()  # a setting added later is missing from older config.json files: it had its default
    return [key for key in CONFIG_FIELDS if stored.get(key, getattr(default, key)) != getattr(config, key)]


def complete_summary(config: Config) -> dict | None:
    """The summary of the run ``config`` asks for if its directory holds it complete; None if it must be (re)done.

    Complete: config.json holds these settings and was made from the same data and plug-ins as are there now
    (provenance.changed), summary.json passes the summary's schema and says completed or diverged, and
    metrics.jsonl holds every record the summary claims (else: the last step the summary says was done).
    """
    path = Path(config.out)
    stored = files.read_json(path / "config.json")
    summary = files.read_json(path / "summary.json")
    if stored is None or differing_settings(config, stored) or summary is None or not _well_formed(summary, path):
        return None
    if provenance.changed(stored, config.data):  # its data or a plug-in changed since: the run is redone
        return None
    try:
        records = files.read_records(path)
    except RunDirError:  # missing or damaged metrics.jsonl
        return None
    claimed = summary.get("records")
    if claimed is not None:
        return summary if len(records) >= claimed else None
    # Older summaries do not count records; the last step (or the one that diverged) is always logged.
    last = records[-1].get("step") if records else None
    return summary if isinstance(last, int) and last >= summary["steps_done"] - 1 else None


def _well_formed(summary: dict, path: Path) -> bool:
    """Whether the summary passes its schema (measure/records.py) and says the run ended (completed or diverged)."""
    try:
        check_summary(summary, str(path / "summary.json"))
    except UsageError:
        return False
    return summary["status"] in ("completed", "diverged") and summary.get("steps_done") is not None


def _run_one(config: Config) -> dict:
    """One run, quietly, from scratch unless it is complete; KeyboardInterrupt if the run was interrupted."""
    done = complete_summary(config)
    if done is not None:
        return done
    path = Path(config.out)
    summary = experiment.run(config, force=True, progress=False, command=f"sweep run {path.name}")
    if summary.get("status") == "interrupted":  # experiment.run caught Ctrl-C or SIGTERM to write its summary
        raise errors.Terminated if summary.get("signal") == "SIGTERM" else KeyboardInterrupt
    return summary


def _refuse_other_settings(root: Path, runs: list[tuple[str, Config]]) -> None:
    """RunDirError naming the first run directory made with other settings (see the module docstring)."""
    clashes = []
    for name, config in runs:
        stored = files.read_json(Path(config.out) / "config.json")
        differing = differing_settings(config, stored) if stored is not None else []
        if differing:
            clashes.append((name, stored, config, differing))
    if not clashes:
        return
    name, stored, config, differing = clashes[0]
    changes = ", ".join(f"{k} {stored.get(k, '(unset)')!r} there, {getattr(config, k)!r} now" for k in differing)
    more = f" (and {len(clashes) - 1} more runs)" if len(clashes) > 1 else ""
    raise RunDirError(
        f"sweep directory {root} holds run {name} made with other settings: {changes}{more}; "
        f"choose another {spell('out')}, or remove {root / 'runs'} to redo the runs"
    )


def run_sweep(
    sweep: Sweep,
    out,
    jobs: int = 1,
    scheduler: str | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run every grid point not yet complete; write sweep.csv, sweep.md and figures; return the rows.

    Every run's config is validated before anything is written. Ctrl-C raises KeyboardInterrupt and SIGTERM
    raises errors.Terminated once every running run has ended as interrupted.

    From a script, ``jobs > 1`` needs no ``if __name__ == "__main__":`` guard: each worker re-runs the script
    for its registrations only up to this call (see ``workers``).
    """
    from tqdm import tqdm

    workers.stop_if_reexecuting()

    root = Path(out)
    runs = sweep.configs(root)  # validates every cell, before anything is written
    mine = runs if shard is None else [r for i, r in enumerate(runs) if i % shard[1] == shard[0]]
    with errors.sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        # The sweep's directory is claimed as a run's is (rundir.claim): an empty one or a sweep's own, never a
        # folder this laboratory did not write. Shards of one sweep may share OUT (one per machine): each locks its
        # own share, the same shard twice clashes.
        share = None if shard is None else f".shard-{shard[0]}-of-{shard[1]}"
        stack.enter_context(rundir.claim(root, "sweep", reuse=True, lock=share))
        _refuse_other_settings(root, mine)
        todo = [config for _, config in mine if complete_summary(config) is None]
        client = stack.enter_context(_dask_client(scheduler)) if scheduler and todo else None
        files.atomic_write(root / "sweep.json", files.dumps(dataclasses.asdict(sweep), indent=2) + "\n")
        bar = stack.enter_context(
            tqdm(
                total=len(mine),
                initial=len(mine) - len(todo),
                desc=f"sweep {sweep.name}",
                unit="run",
                disable=None if progress else True,  # tqdm's convention: None = only on a terminal
                file=sys.stderr,
                dynamic_ncols=True,
            )
        )
        for _ in stack.enter_context(contextlib.closing(_execute(todo, jobs, client))):
            bar.update(1)
        rows = collect(root, sweep)
        write_tables(root, rows, list(sweep.grid))
        if not plots.unavailable():  # matplotlib is optional (a headless cluster); the CLI says when it is missing
            figures(root, rows, list(sweep.grid))
        html.write_sweep_page(root, *table_cells(rows, list(sweep.grid)), [row["run"] for row in rows],
                              shared_settings(sweep))  # fmt: skip
    return rows


@contextlib.contextmanager
def _dask_client(scheduler: str):
    """A Dask client on ``scheduler``, or one line (UsageError) if none answers within a few seconds."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'tinygrad_act[dask]'") from None
    try:
        client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(
            f"no Dask scheduler answers at --scheduler {scheduler!r} within {DASK_CONNECT_TIMEOUT_S} s "
            f"({reason}); start one (dask scheduler) or write tcp://HOST:PORT"
        ) from None
    with client:
        yield client


def _execute(configs: list[Config], jobs: int, client=None):
    """Yield once per finished run, in completion order; stop everything on the first interrupt or error.

    In parallel the longest runs start first (``longest_first``); one process runs them in the grid's order."""
    if not configs:
        return
    if jobs > 1 or client is not None:
        configs = longest_first(configs)
    if client is not None:
        from dask.distributed import as_completed

        futures = client.map(_run_one, configs, pure=False)
        try:
            for future in as_completed(futures):
                future.result()
                yield
        finally:
            client.cancel(futures)  # queued runs never start; a run already on a worker finishes there
        return
    if jobs <= 1:
        for config in configs:
            _run_one(config)
            yield
        return
    # One BLAS thread per worker (numpy reads it at import); the workers stop when this generator is closed.
    with contextlib.closing(workers.run_all(_run_one, configs, jobs, {k: "1" for k in BLAS_ENV})) as results:
        for _ in results:
            yield


def cost(config: Config) -> int:
    """A run's estimated relative cost, for scheduling only: steps x depth x (multiply-adds per layer and step,
    batch x width^2, plus a fixed 2^18 for the Python work per layer and step, which dominates at width 64)."""
    return config.steps * config.depth * (config.batch_size * config.width * config.width + 2**18)


def longest_first(configs: list[Config]) -> list[Config]:
    """The runs in order of decreasing ``cost`` (ties keep their order), so that no long run starts last while the
    other workers idle. Only the schedule changes: results and tables keep the grid's order."""
    return sorted(configs, key=cost, reverse=True)  # sorted is stable, also in reverse


def prefetch(sweeps: list[tuple[Sweep, Path]], jobs: int = 1, progress: bool = True) -> None:
    """Run every incomplete run of several sweeps (each with its OUT) in one pool, longest first across all of them.

    The report does this before writing up each finding: workers start once, and no sweep's tail leaves a core
    idle while the next sweep waits. ``run_sweep`` on each then finds its runs complete.
    """
    from tqdm import tqdm

    workers.stop_if_reexecuting()
    with errors.sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        todo = []
        for sweep, out in sweeps:
            root = Path(out)
            runs = sweep.configs(root)
            stack.enter_context(rundir.claim(root, "sweep", reuse=True))
            _refuse_other_settings(root, runs)
            todo += [config for _, config in runs if complete_summary(config) is None]
        bar = stack.enter_context(
            tqdm(total=len(todo), desc="runs", unit="run", disable=None if progress else True, file=sys.stderr)
        )
        for _ in stack.enter_context(contextlib.closing(_execute(todo, jobs))):
            bar.update(1)


def shared_settings(sweep: Sweep) -> dict:
    """The settings every run of ``sweep`` shares: its fixed ones over the defaults, the grid's keys left out, and
    those that change no number (where runs live, the figures the sweep draws itself, the captured step) too."""
    every = {**dataclasses.asdict(Config()), **sweep.fixed}
    left_out = {*sweep.grid, "out", "figures", "capture"}
    return {key: "auto" if value is None else value for key, value in every.items() if key not in left_out}


def collect(root: Path, sweep: Sweep) -> list[dict]:
    """One row per complete run (parameters, then ROW_FIELDS); runs missing or incomplete are left out."""
    rows = []
    for (name, config), point in zip(sweep.configs(root), sweep.points()):
        summary = complete_summary(config)
        if summary is None:
            continue
        theory = summary.get("theory") or {}
        row = {**point, "run": name}
        for field in ROW_FIELDS:
            row[field] = summary.get(field)
        row["verdict"] = shown_verdict(summary)  # a diverged run reads "diverged", whatever r said at step 0
        row["predicted_ratio"] = theory.get("ratio") if theory.get("applies") else None
        row["predicted_per_layer_factor"] = theory.get("per_layer_factor") if theory.get("applies") else None
        resolved = (files.read_json(Path(config.out) / "config.json") or {}).get("init_resolved")
        row["init_resolved"] = resolved.get("name") if isinstance(resolved, dict) else None  # what "auto" chose
        rows.append(row)
    return rows
