"""A run's figures rendered in other processes, off the training path: the same pictures (run_figures.figures).

``Drawer()`` starts a process when a run starts; it imports matplotlib and lays out and renders one small figure
with the fonts and mathematics the figures use (about a second of a fresh process, mostly the mathtext parser's
construction), on the second core while the run trains. ``draw(path, records, summary)`` sends it what
``run_figures.rendered`` reads; it forks (on Linux), so that two copies of the prepared process render
half of the figures each, one a core, and the run writes the PNGs they send back: the run waits for half the
rendering, pays matplotlib's start once, and every file is written by its own process (its ownership manifest).
A sweep's runs draw in their own process instead (``experiment.run(draw_aside=False)``): there matplotlib is
imported once for many runs, and the second core trains another run.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

from . import plots, run_figures

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the directory holding tinygrad_act/


SHARES = 2  # one a core: the run's own process only waits while they render


class Drawer:
    """The rendering process of one run: started on construction, ended by ``draw`` or ``close``."""

    def __init__(self):
        warnings = [f"-W{option}" for option in sys.warnoptions]  # -W error reaches the pictures' warnings too
        path = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, *warnings, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
            start_new_session=True,  # Ctrl-C reaches the run, which ends its drawer (close); its own process group
        )

    def draw(self, path, records: list[dict], summary: dict) -> dict:
        """{"figures": [...]}, {"figures_skipped": why}, or {"figures_error": ...}, as experiment.draw."""
        message = (str(path), records, summary)
        with contextlib.suppress(BrokenPipeError):  # a process that died says why below
            self.process.stdin.write(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
        out, err = self.process.communicate()
        if self.process.returncode != 0 or not out:
            last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
            return {"figures_error": f"a drawing process exited with {self.process.returncode}: {last}"}
        result = pickle.loads(out)
        return {"figures": run_figures.write(path, result["pictures"])} if "pictures" in result else result

    def close(self) -> None:
        """End the process (and its fork) if still running (a run stopped before its figures, or interrupted while
        drawing)."""
        process = self.process
        if process.returncode is None:  # not yet waited for
            if hasattr(os, "killpg"):
                with contextlib.suppress(ProcessLookupError):  # the fork too: the group is the process's session
                    os.killpg(process.pid, signal.SIGKILL)
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
    plots.png(fig)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run decides when drawing stops
    skipped = plots.unavailable()
    if not skipped:
        prepare()
    try:
        path, records, summary = pickle.load(sys.stdin.buffer)
    except EOFError:  # the run ended before its figures: nothing to draw
        return 0
    result = {"figures_skipped": skipped} if skipped else _rendered(path, records, summary)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


def _share(path, records: list[dict], summary: dict, share: tuple[int, int]) -> dict:
    try:
        return {"pictures": run_figures.rendered(path, records, summary, share)}
    except Exception as error:  # figures must never lose the run
        return {"figures_error": f"{type(error).__name__}: {error}"}


def _rendered(path, records: list[dict], summary: dict) -> dict:
    """{"pictures": every figure in order} or {"figures_error": ...}: a fork of this prepared process renders one
    share of the figures while this one renders the other (on Linux; elsewhere this one renders them all)."""
    if not sys.platform.startswith("linux"):  # macOS's system libraries are not safe to fork once loaded
        return _share(path, records, summary, (0, 1))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fork: its share down the pipe, then gone without running this process's exit handlers
        os.close(read)
        try:
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(_share(path, records, summary, (0, SHARES)), pipe, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            os._exit(0)
    os.close(write)
    mine = _share(path, records, summary, (1, SHARES))  # the lighter share (run_figures.in_share): reads the pipe next
    with os.fdopen(read, "rb") as pipe:
        try:
            shares = [pickle.load(pipe), mine]
        except EOFError:  # the fork died before it said anything
            shares = [{"figures_error": "the drawing process's fork ended without its figures"}]
    os.waitpid(pid, 0)
    failed = [share for share in shares if "pictures" not in share]
    if failed:
        return failed[0]
    dealt = [iter(share["pictures"]) for share in shares]
    count = sum(len(share["pictures"]) for share in shares)
    return {"pictures": [next(dealt[run_figures.in_share(i, SHARES)]) for i in range(count)]}  # back in order


if __name__ == "__main__":
    raise SystemExit(main())
