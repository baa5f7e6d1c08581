"""A run's figures rendered in other processes, off the training path: the same pictures (run_figures.figures).

``Drawer()`` starts two processes when a run starts; each imports matplotlib and lays out and renders one small
figure with the fonts and mathematics the figures use (about a second of a fresh process, mostly the mathtext
parser's construction), on the second core while the run trains. ``draw(path, records, summary)`` sends each
what ``run_figures.rendered`` reads and half of the figures to render, and writes the PNGs they send back here:
the run pays half the rendering, and every file is written by the run's own process (its ownership manifest).
A sweep's runs draw in their own process instead (``experiment.run(draw_aside=False)``): there matplotlib is
imported once for many runs, and the second core trains another run.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

from . import plots, run_figures

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the directory holding tinygrad_act/


PROCESSES = 2  # one a core: the run's own process only waits while they render


class Drawer:
    """The rendering processes of one run: started on construction, ended by ``draw`` or ``close``."""

    def __init__(self):
        warnings = [f"-W{option}" for option in sys.warnoptions]  # -W error reaches the pictures' warnings too
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        self.processes = [
            subprocess.Popen(
                [sys.executable, *warnings, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path},
                start_new_session=True,  # Ctrl-C reaches the run, which ends its drawer (close)
            )
            for _ in range(PROCESSES)
        ]

    def draw(self, path, records: list[dict], summary: dict) -> dict:
        """{"figures": [...]}, {"figures_skipped": why}, or {"figures_error": ...}, as experiment.draw."""
        for index, process in enumerate(self.processes):
            message = (str(path), records, summary, (index, len(self.processes)))
            with contextlib.suppress(BrokenPipeError):  # a process that died says why below
                process.stdin.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        shares = []
        for process in self.processes:
            out, err = process.communicate()
            if process.returncode != 0 or not out:
                last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
                return {"figures_error": f"a drawing process exited with {process.returncode}: {last}"}
            share = pickle.loads(out)
            if "pictures" not in share:
                return share
            shares.append(share["pictures"])
        pictures = [None] * sum(len(share) for share in shares)
        for index, share in enumerate(shares):
            pictures[index :: len(shares)] = share  # share i holds figures i, i + n, ...: back in their order
        return {"figures": run_figures.write(path, pictures)}

    def close(self) -> None:
        """End the processes still running (a run stopped before its figures, or interrupted while drawing)."""
        for process in self.processes:
            if process.returncode is None:  # not yet waited for (draw waits for each in turn)
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                with contextlib.suppress(OSError):  # a message the killed process never read: gone with it
                    stream.close()


def prepare() -> None:
    """Pay matplotlib's one-time costs now: import, font loading, the mathtext parser, a PNG encoder."""
    fig, axes = plots.figure(1, 1, figsize=(2, 2))
    axes.set_yscale("log")
    axes.plot([1, 2], [1e-3, 1.0])
    axes.set_title(r"$\sigma_w^2 \cdot E[f'^2]$ — $r$ = 1e-12")
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png", dpi=plots.DPI)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run decides when drawing stops
    skipped = plots.unavailable()
    if not skipped:
        prepare()
    try:
        path, records, summary, share = pickle.load(sys.stdin.buffer)
    except EOFError:  # the run ended before its figures: nothing to draw
        return 0
    if skipped:
        result = {"figures_skipped": skipped}
    else:
        try:
            result = {"pictures": run_figures.rendered(path, records, summary, share)}
        except Exception as error:  # figures must never lose the run
            result = {"figures_error": f"{type(error).__name__}: {error}"}
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
