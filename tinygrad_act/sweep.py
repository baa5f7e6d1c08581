"""A grid of runs over any experiment parameters, run in parallel, resumable.

One run is the unit of work: it lives in ``<sweep dir>/runs/<name>/`` (the name spells its grid values) and
is complete when its ``summary.json`` exists, so a killed sweep resumes where it stopped and a finished run
is never redone. Runs go to local worker processes (``jobs``; BLAS pinned to one thread per worker), to a
Dask cluster (``scheduler="tcp://host:port"``), or are split across machines with ``shard=(i, n)``.
Outputs: ``sweep.csv`` and ``sweep.md`` (one row per run) and figures (see ``figures``).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path

from .errors import UsageError
from .experiment import Config

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
CONFIG_FIELDS = {f.name: f.type for f in dataclasses.fields(Config) if f.name != "out"}
ROW_FIELDS = [
    "status",
    "verdict",
    "verdict_final",
    "ratio_init",
    "ratio_final",
    "per_layer_factor_init",
    "per_layer_factor_final",
    "predicted_ratio",
    "predicted_per_layer_factor",
    "final_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "steps_done",
    "wall_time_s",
]


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
        self.grid = {k: [_coerce(k, v) for v in values] for k, values in self.grid.items()}
        self.fixed = {k: _coerce(k, v) for k, v in self.fixed.items()}
        both = sorted(set(self.grid) & set(self.fixed))
        if both:
            raise UsageError(f"sweep parameter {both[0]!r} is both in the grid and fixed")

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


def _coerce(key: str, value):
    kind = CONFIG_FIELDS[key]
    if kind in ("int", int):
        if isinstance(value, str) or (isinstance(value, float) and value.is_integer()):
            try:
                return int(value)
            except ValueError:
                raise UsageError(f"{key} must be an integer, got {value!r}") from None
    if kind in ("float", float) and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"{key} must be a number, got {value!r}") from None
    if kind in ("bool", bool) and isinstance(value, str):
        if value.strip().lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise UsageError(f"{key} must be true or false, got {value!r}")
        return value.strip().lower() in ("1", "true", "yes")
    if kind in ("str", str) and not isinstance(value, str):  # e.g. act = 1 in a TOML: a name, not a number
        raise UsageError(f"{key} must be a name such as {getattr(Config, key)!r}, got {value!r}")
    return value


def run_name(point: dict) -> str:
    """A directory name that spells the grid values: ``act=relu,depth=20,seed=0`` -> ``act-relu_depth-20_seed-0``."""
    parts = [f"{key}-{value}" for key, value in point.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts)).replace("=", "")


def load_config(name_or_path: str) -> Sweep:
    """A named sweep under experiments/ (``vanishing_depth``) or a path to a TOML file.

    The file holds ``name``, ``description``, a ``[grid]`` table of lists and a ``[fixed]`` table.
    """
    path = Path(name_or_path)
    if not path.suffix:
        candidates = [Path("experiments") / f"{name_or_path}.toml", _repo_experiments() / f"{name_or_path}.toml"]
        path = next((p for p in candidates if p.exists()), candidates[0])
    if not path.exists():
        available = sorted(p.stem for p in _repo_experiments().glob("*.toml"))
        raise UsageError(f"no sweep config {name_or_path!r}; choose one of: {', '.join(available) or 'none found'}")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(path, "rb") as f:
        try:
            table = tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{path}: {error}") from None
    unknown = sorted(set(table) - {"name", "description", "grid", "fixed", "report"})
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}; valid keys: name, description, grid, fixed, report")
    return Sweep(
        table.get("grid", {}), table.get("fixed", {}), table.get("name", path.stem), table.get("description", "")
    )


def _repo_experiments() -> Path:
    return Path(__file__).resolve().parent.parent / "experiments"


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> (1, 4): this machine runs every 4th run starting at index 1 (0-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise UsageError(f"bad shard {text!r}; write i/N with 0 <= i < N, e.g. 0/2")
    return int(match.group(1)), int(match.group(2))


def _run_one(config: Config) -> dict:
    """Worker: one run, quietly; resumable because a run without summary.json is redone from scratch."""
    from .experiment import run

    path = Path(config.out)
    summary_file = path / "summary.json"
    done = _summary(path)
    if done is not None:
        return done
    summary = run(config, force=True, progress=False, command=f"sweep run {path.name}")
    return json.loads(summary_file.read_text()) if summary_file.exists() else summary


def _summary(path: Path) -> dict | None:
    """A run's summary, or None while the run is not complete: no summary.json, or one cut short by a kill,
    or a run stopped by Ctrl-C (its workers get the signal too): those are redone when the sweep resumes."""
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return None if summary.get("status") == "interrupted" else summary


def _pinned_blas():
    """Environment for worker processes: one BLAS thread each (numpy reads it at import)."""

    class _Pin:
        def __enter__(self):
            self.saved = {k: os.environ.get(k) for k in BLAS_ENV}
            os.environ.update({k: "1" for k in BLAS_ENV})

        def __exit__(self, *exc):
            for key, value in self.saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    return _Pin()


def run_sweep(
    sweep: Sweep,
    out,
    jobs: int = 1,
    scheduler: str | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run every grid point not yet complete; write sweep.csv, sweep.md and figures; return the rows."""
    from tqdm import tqdm

    root = Path(out)
    runs = sweep.configs(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(dataclasses.asdict(sweep), indent=2) + "\n")
    mine = runs if shard is None else [r for i, r in enumerate(runs) if i % shard[1] == shard[0]]
    todo = [config for _, config in mine if _summary(Path(config.out)) is None]
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc=f"sweep {sweep.name}",
        unit="run",
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        for _ in _execute(todo, jobs, scheduler):
            bar.update(1)
    finally:
        bar.close()
    rows = collect(root, sweep)
    write_tables(root, rows, list(sweep.grid))
    try:
        figures(root, rows, list(sweep.grid))
    except ImportError:  # matplotlib is optional for sweeps run headless on a cluster
        pass
    return rows


def _execute(configs: list[Config], jobs: int, scheduler: str | None):
    """Yield once per finished run, in completion order."""
    if not configs:
        return
    if scheduler:
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise UsageError("--scheduler needs Dask: pip install 'tinygrad_act[dask]'") from None
        with Client(scheduler) as client:
            futures = client.map(_run_one, configs, pure=False)
            for future in as_completed(futures):
                future.result()
                yield
        return
    if jobs <= 1:
        for config in configs:
            _run_one(config)
            yield
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with _pinned_blas(), ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, config) for config in configs]
        for future in as_completed(futures):
            future.result()
            yield


def collect(root: Path, sweep: Sweep) -> list[dict]:
    """One row per grid point with a summary (parameters, then ROW_FIELDS); missing runs are left out."""
    rows = []
    for point in sweep.points():
        path = root / "runs" / run_name(point)
        summary = _summary(path)
        if summary is None:
            continue
        theory = summary.get("theory") or {}
        row = {**point, "run": path.name}
        for field in ROW_FIELDS:
            row[field] = summary.get(field)
        row["predicted_ratio"] = theory.get("ratio") if theory.get("applies") else None
        row["predicted_per_layer_factor"] = theory.get("per_layer_factor") if theory.get("applies") else None
        rows.append(row)
    return rows


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3g}" if 1e-2 <= abs(value) < 1e3 or value == 0 else f"{value:.2e}"
    return str(value)


def write_tables(root: Path, rows: list[dict], keys: list[str]) -> None:
    """sweep.csv (machine-readable) and sweep.md (a Markdown table)."""
    columns = [*keys, *ROW_FIELDS, "run"]
    with open(root / "sweep.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    shown = [
        *keys,
        "verdict",
        "ratio_init",
        "ratio_final",
        "per_layer_factor_init",
        "predicted_per_layer_factor",
        "test_loss",
        "test_accuracy",
        "status",
    ]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in shown) + " |" for row in rows]
    (root / "sweep.md").write_text("\n".join(lines) + "\n")


def figures(root: Path, rows: list[dict], keys: list[str]) -> list[str]:
    """ratio vs depth (band over seeds), a heatmap activation x depth of log10 r, step-0 delta profiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    if not rows:
        return written
    out = root / "figures"
    out.mkdir(exist_ok=True)
    lines_by = [k for k in keys if k not in ("depth", "seed")]

    def label_of(row):
        return ", ".join(f"{row[k]}" for k in lines_by) or "all"

    def log_ratio(row):
        r = row.get("ratio_init")
        return math.log10(r) if isinstance(r, (int, float)) and r and r > 0 and math.isfinite(r) else np.nan

    if "depth" in keys:
        fig, ax = plt.subplots(figsize=(8, 5))
        for label in dict.fromkeys(label_of(r) for r in rows):
            group = [r for r in rows if label_of(r) == label]
            depths = sorted({r["depth"] for r in group})
            # r = 0 or non-finite has no place on a log axis: such runs are left out, a depth with none is a gap
            logs = [[log_ratio(r) for r in group if r["depth"] == d] for d in depths]
            values = [[10**x for x in v if not np.isnan(x)] for v in logs]
            median = [np.median(v) if v else np.nan for v in values]
            line = ax.plot(depths, median, marker="o", label=label)[0]
            ax.fill_between(
                depths,
                [min(v) if v else np.nan for v in values],
                [max(v) if v else np.nan for v in values],
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_xscale("linear")
        ax.set_yscale("log")
        ax.axhspan(1e-2, 1e2, color="green", alpha=0.06, label="healthy band")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel("r = ||delta_1|| / ||delta_L|| at step 0")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        _save(fig, out / "ratio_vs_depth.png", written)

        if "act" in keys:
            acts = list(dict.fromkeys(r["act"] for r in rows))
            depths = sorted({r["depth"] for r in rows})
            grid = np.full((len(acts), len(depths)), np.nan)
            for i, a in enumerate(acts):
                for j, d in enumerate(depths):
                    vals = [log_ratio(r) for r in rows if r["act"] == a and r["depth"] == d]
                    grid[i, j] = np.nanmedian(vals) if vals and not np.all(np.isnan(vals)) else np.nan
            fig, ax = plt.subplots(figsize=(1.2 * len(depths) + 3, 0.45 * len(acts) + 2))
            image = ax.imshow(grid, cmap="RdBu", vmin=-12, vmax=12, aspect="auto")
            for (i, j), v in np.ndenumerate(grid):
                ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(depths)), depths)
            ax.set_yticks(range(len(acts)), acts)
            ax.set_xlabel("depth")
            fig.colorbar(image, ax=ax, label="log10 r at step 0 (median over other parameters)")
            _save(fig, out / "ratio_heatmap.png", written)

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        first = _first_record(root / "runs" / row["run"])
        if first is None:
            continue
        deltas = [layer.get("delta_norm") for layer in first["layers"][:-1]]
        deltas = np.array([np.nan if d is None else d for d in deltas], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):  # a vanished last delta (0) leaves no profile
            profile = deltas / deltas[-1]
        ax.plot(
            np.arange(1, len(deltas) + 1),
            profile,
            lw=1,
            alpha=0.8,
            label=f"{label_of(row)}, depth {row.get('depth', '')}" if row.get("seed", 0) in (0, None) else None,
        )
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer (input side first)")
    ax.set_ylabel("||delta_l|| / ||delta_L|| at step 0")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, out / "delta_profiles.png", written)
    return written


def _save(fig, path: Path, written: list) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(f"figures/{path.name}")


def _first_record(path: Path):
    try:
        with open(path / "metrics.jsonl", encoding="utf-8") as f:
            return json.loads(f.readline())
    except (OSError, ValueError):
        return None
