"""The walk of one configuration through the house: which modules run, and how often control climbs back up.

``python -m bench.walk`` traces a tiny ``experiment`` (sys.setprofile) and prints how many of the package's modules
run, how many arrows between modules the calls use, and the calls that climb back up the import order: a call from
module A into a module B that imports A (directly or through others), i.e. a callback, a hook or a hidden circle.
Issue 19 counted these before and after lab/ was split into rooms; run it on any commit to compare.
"""

from __future__ import annotations

import collections
import sys
import tempfile

import grimp

from tinygrad_act import cli

PACKAGE = "tinygrad_act"
ARGV = ["experiment", "--depth", "6", "--width", "16", "--steps", "40", "--act", "sigmoid"]


def trace(argv: list[str]) -> tuple[set[str], collections.Counter]:
    """Run the CLI in-process on ``argv``; return the package's modules that ran and the calls between modules."""
    visited: set[str] = set()
    arrows: collections.Counter = collections.Counter()

    def module(frame) -> str | None:
        name = frame.f_globals.get("__name__", "")
        return name if name.startswith(PACKAGE) else None

    def profile(frame, event, arg):
        if event != "call" or (callee := module(frame)) is None:
            return
        visited.add(callee)
        caller = module(frame.f_back) if frame.f_back else None
        if caller and caller != callee:
            arrows[(caller, callee)] += 1

    sys.setprofile(profile)
    try:
        cli.main(argv)
    finally:
        sys.setprofile(None)
    return visited, arrows


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        visited, arrows = trace([*ARGV, "--out", f"{out}/run"])
    graph = grimp.build_graph(PACKAGE)
    climbs = {arrow: n for arrow, n in arrows.items() if graph.chain_exists(importer=arrow[1], imported=arrow[0])}
    print(f"modules run: {len(visited)} (lab: {sum(m.startswith(PACKAGE + '.lab') for m in visited)})")
    print(f"arrows between modules used: {len(arrows)}")
    print(f"climbs back up (the callee imports the caller): {len(climbs)} arrows, {sum(climbs.values())} calls")
    for (caller, callee), n in sorted(climbs.items(), key=lambda item: -item[1]):
        print(f"  {caller} -> {callee}: {n}")


if __name__ == "__main__":
    main()
