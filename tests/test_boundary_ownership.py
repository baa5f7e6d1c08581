"""Ownership (issue 18, item 1): a directory is a run only if the laboratory wrote it; FORCE replaces only a run and
removes only what that run's manifest lists; a refused RESUME changes nothing; compare never writes over a file it
did not write; a sweep's directory follows the same rule."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hostile import (
    TINY,
    call,
    command,
    copy_run,
    experiment,
    refused,
    snapshot,
    succeeded,
    unchanged,
)  # fmt: skip

import tinygrad_act
from tinygrad_act import makeargs
from tinygrad_act.common import files
from tinygrad_act.lab.run import rundir

RUN_FILE_NAMES = [
    "config.json", "summary.json", "metrics.jsonl", "metrics.csv", "checkpoint.npz", "report.html", "histograms.npz",
    "summary.json.partial", "notes.tmp", ".config.json.abc123.tmp",
]  # fmt: skip

pytestmark = pytest.mark.usefixtures("data_cache")


def _user_folder(tmp_path, *names):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    for name in names:
        if name in ("figures", "tensorboard"):
            (folder / name).mkdir()
            (folder / name / "holiday.png").write_bytes(b"my photo")
        else:
            (folder / name).write_text(f"my own {name}")
    return folder


# ---- FORCE replaces only a run -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*RUN_FILE_NAMES, "figures", "tensorboard"])
@pytest.mark.parametrize("force", [True, False], ids=["force", "plain"])
def test_a_folder_the_lab_did_not_write_is_never_a_run_even_with_a_run_files_name(tmp_path, name, force):
    folder = _user_folder(tmp_path, name)
    before = snapshot(folder)
    line = refused(experiment(folder, *(["--force"] if force else [])), str(folder))
    assert "not written by" in line or "not a run" in line
    unchanged(before, folder, ignore=())


def test_force_on_the_current_directory_of_a_project_changes_nothing(tmp_path, monkeypatch):
    folder = _user_folder(tmp_path, "config.json", "summary.json")
    monkeypatch.chdir(folder)
    before = snapshot(folder)
    refused(experiment(".", "--force"))
    unchanged(before, folder, ignore=())


def test_out_as_a_link_to_a_users_folder_is_refused_and_the_folder_unchanged(tmp_path):
    folder = _user_folder(tmp_path, "summary.json")
    link = tmp_path / "out"
    link.symlink_to(folder, target_is_directory=True)
    before = snapshot(folder)
    refused(experiment(link, "--force"))
    unchanged(before, folder, ignore=())


def test_force_on_a_run_keeps_the_files_a_user_added_beside_and_inside_it(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    (path / "notes.txt").write_text("mine")
    (path / "figures" / "holiday.png").write_bytes(b"my photo")
    (path / "draft.tmp").write_text("mine")
    (path / ".config.json.abc123.tmp").write_text("mine too")
    succeeded(experiment(path, "--force", "--seed", "1"))
    assert (path / "notes.txt").read_text() == "mine" and (path / "draft.tmp").read_text() == "mine"
    assert (path / "figures" / "holiday.png").read_bytes() == b"my photo"
    assert (path / ".config.json.abc123.tmp").read_text() == "mine too"
    assert json.loads((path / "config.json").read_text())["seed"] == 1
    # the old run's page and figures went with it: this run draws none, and its own page says so (showing no
    # picture of the user's as if the run had drawn it)
    page = (path / "report.html").read_text()
    assert "<img" not in page and "holiday" not in page and "no figures" in page
    assert [p.name for p in (path / "figures").iterdir()] == ["holiday.png"]


def test_force_removes_exactly_the_files_the_old_runs_manifest_lists(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    listed = set(files.Owned.read(path).files)
    assert {"config.json", "summary.json", "metrics.jsonl", "checkpoint.npz", "report.html"} <= listed
    assert any(name.startswith("figures/") and name.endswith(".png") for name in listed)
    (path / "figures" / "holiday.png").write_bytes(b"my photo")
    unlisted = {k for k in snapshot(path) if k != "." and k not in listed and k.rstrip("/") + "/" not in listed}
    succeeded(experiment(path, "--force"))  # without figures: the old ones must go, the user's must stay
    assert not any(name.endswith(".png") and (path / name).exists() for name in listed)
    assert unlisted <= set(snapshot(path))


def test_a_finished_runs_manifest_lists_every_file_it_wrote(finished):
    owned = files.Owned.read(finished)
    assert owned.kind == "run"
    written = {str(p.relative_to(finished)) + ("/" if p.is_dir() else "") for p in finished.rglob("*")}
    written -= {files.LOCK_NAME, files.MANIFEST}
    assert written == set(owned.files)


def test_a_temporary_file_the_run_left_is_removed_by_force_and_one_it_did_not_write_is_kept(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    token = files.Owned.read(path).token
    ours, theirs = path / f".{token}.summary.json.x1y2.tmp", path / ".summary.json.x1y2.tmp"
    ours.write_text("half a summary")
    theirs.write_text("someone else's")
    succeeded(experiment(path, "--force"))
    assert not ours.exists() and theirs.read_text() == "someone else's"


def test_the_run_directory_is_claimed_by_one_function_every_surface_uses():
    assert callable(rundir.claim)
    assert rundir.prepare.__module__ == rundir.__name__


# ---- the message speaks the caller's language ----------------------------------------------------------------------
def test_an_existing_run_refused_from_python_says_force_true(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    line = refused(call(tinygrad_act.run, **TINY, out=str(path)), "force=True")
    assert "--force" not in line


def test_an_existing_run_refused_from_the_command_line_says_force_option(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    assert "force=True" not in refused(experiment(path), "--force")


def test_an_existing_run_refused_from_make_says_force_variable(tmp_path, finished, capsys, monkeypatch):
    path = copy_run(finished, tmp_path / "run")
    for name in (*makeargs.VARIABLES, makeargs.COMMAND_LINE):  # also the names of a make running these tests
        monkeypatch.delenv(name, raising=False)
    environ = {"DEPTH": "2", "WIDTH": "4", "STEPS": "2", "DATA": "spirals:n=60", "BATCH": "8", "OUT": str(path)}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert makeargs.main(["experiment"]) == 2
    line = capsys.readouterr().err.strip()
    assert "FORCE=1" in line and "--force" not in line


# ---- a refused RESUME changes nothing -------------------------------------------------------------------------------
def _resume(path):
    return command("experiment", "--resume", path, "--no-progress")


def test_resume_continues_an_interrupted_run(tmp_path, interrupted):
    path = copy_run(interrupted, tmp_path / "run")
    succeeded(_resume(path))
    assert json.loads((path / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize(
    "damage",
    ["no checkpoint", "checkpoint of other settings", "corrupt checkpoint", "checkpoint of another shape",
     "metrics cut in the middle", "config edited"],
)  # fmt: skip
def test_a_refused_resume_changes_nothing(tmp_path, interrupted, damage):
    path = copy_run(interrupted, tmp_path / "run")
    checkpoint = path / "checkpoint.npz"
    if damage == "no checkpoint":
        checkpoint.unlink()
    elif damage == "corrupt checkpoint":
        checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    elif damage in ("checkpoint of other settings", "checkpoint of another shape"):
        with np.load(checkpoint) as npz:
            arrays = dict(npz)
        if damage == "checkpoint of other settings":
            arrays["config"] = np.array(json.dumps({**json.loads(str(arrays["config"])), "lr": 0.5}))
        else:
            arrays["model.blocks.0.linear.weight"] = np.zeros((3, 3))
        np.savez(checkpoint, **arrays)
    elif damage == "metrics cut in the middle":
        lines = (path / "metrics.jsonl").read_text().splitlines()
        (path / "metrics.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    else:
        config = json.loads((path / "config.json").read_text())
        (path / "config.json").write_text(json.dumps({**config, "steps": 3}))
    before = snapshot(path)
    refused(_resume(path))
    unchanged(before, path)


def test_resume_of_a_folder_the_lab_did_not_write_is_refused_and_changes_nothing(tmp_path, interrupted):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.json").write_text((interrupted / "config.json").read_text())
    (folder / "checkpoint.npz").write_bytes((interrupted / "checkpoint.npz").read_bytes())
    before = snapshot(folder)
    refused(_resume(folder), str(folder))
    unchanged(before, folder, ignore=())


# ---- compare writes only its own files -----------------------------------------------------------------------------
def test_compare_refuses_an_existing_file_it_did_not_write(tmp_path, finished):
    for name, content in (("mine.png", b"\x89PNG\r\n\x1a\nmine"), ("notes.txt", b"mine")):
        out = tmp_path / name
        out.write_bytes(content)
        refused(command("compare", finished, "--out", out), str(out), "--force")
        assert out.read_bytes() == content


def test_compare_refuses_to_write_over_a_runs_own_file(tmp_path, finished):
    path = copy_run(finished, tmp_path / "run")
    before = snapshot(path)
    refused(command("compare", path, "--out", path / "summary.json"))
    unchanged(before, path)


def test_compare_replaces_a_file_the_user_names_with_force_and_its_own_file_without(tmp_path, finished):
    out = tmp_path / "mine.png"
    out.write_bytes(b"mine")
    succeeded(command("compare", finished, "--out", out, "--force"))
    first = out.read_bytes()
    assert first.startswith(b"\x89PNG")
    succeeded(command("compare", finished, "--out", out))  # its own file: replaced
    assert out.read_bytes().startswith(b"\x89PNG")


def test_compare_writes_next_to_the_runs_and_never_over_its_earlier_picture(tmp_path, finished, monkeypatch):
    runs = tmp_path / "runs"
    path = copy_run(finished, runs / "a")
    monkeypatch.chdir(tmp_path)
    first = command("compare", path)
    succeeded(first)
    second = command("compare", path)
    succeeded(second)
    pictures = sorted(p.name for p in runs.glob("compare-*.png"))
    assert pictures == ["compare-a-2.png", "compare-a.png"] and not list(tmp_path.glob("*.png"))
    assert "compare-a.png" in first.stdout and "compare-a-2.png" in second.stdout


def test_compare_into_a_directory_is_one_line(tmp_path, finished):
    refused(command("compare", finished, "--out", tmp_path), str(tmp_path))


# ---- sweeps follow the same rule ------------------------------------------------------------------------------------
SWEEP = ["sweep", "--depths", "2", "--width", "4", "--steps", "2", "--data", "spirals:n=60", "--batch-size", "8",
         "--no-progress"]  # fmt: skip


def test_a_sweep_into_a_folder_the_lab_did_not_write_is_refused(tmp_path):
    folder = _user_folder(tmp_path, "sweep.csv", "sweep.md", "report.html")
    before = snapshot(folder)
    refused(command(*SWEEP, "--out", folder), str(folder))
    unchanged(before, folder, ignore=())


@pytest.mark.usefixtures("no_sweep_figures")  # ownership, not pictures: test_sweep.py draws them
def test_a_sweep_never_replaces_a_users_folder_that_has_a_runs_name(tmp_path):
    root = tmp_path / "sweep"
    succeeded(command(*SWEEP, "--out", root))
    (run,) = (root / "runs").iterdir()
    for entry in list(run.iterdir()):
        files.remove(entry)
    (run / "notes.txt").write_text("mine")
    (run / "summary.json").write_text("my own summary")
    before = snapshot(run)
    refused(command(*SWEEP, "--out", root), run.name)
    unchanged(before, run, ignore=())


@pytest.mark.usefixtures("no_sweep_figures")  # ownership, not pictures: test_sweep.py draws them
def test_a_sweep_directory_has_a_manifest_of_its_own(tmp_path):
    root = tmp_path / "sweep"
    succeeded(command(*SWEEP, "--out", root))
    owned = files.Owned.read(root)
    assert owned.kind == "sweep" and {"sweep.csv", "sweep.md", "sweep.json"} <= set(owned.files)
    succeeded(command(*SWEEP, "--out", root))  # a sweep's own directory is reused: the rerun resumes it


def test_a_claim_killed_while_its_first_manifest_is_written_leaves_a_directory_claimed_again(tmp_path):
    # kill -9 at the first manifest's write (here: at its fchmod, before any byte): no temporary file of a token that
    # never reached the disk may be left, or the directory would hold a stranger's file and be refused for ever
    run = tmp_path / "run"
    script = ("import os, sys\nfrom tinygrad_act.common import files\nfiles.make_dir(sys.argv[1])\n"
              "os.fchmod = lambda *args: os._exit(9)\nfiles.Owned(sys.argv[1], 'run').save()")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", script, str(run)], timeout=60).returncode == 9
    assert [p.name for p in run.iterdir()] in ([], [files.MANIFEST])  # empty, or an empty manifest
    with rundir.claim(run, "run") as owned:
        files.atomic_write(run / "summary.json", b"{}")
    assert files.Owned.read(run).files == ["summary.json"] and owned.token == files.Owned.read(run).token
    assert sorted(p.name for p in run.iterdir()) == sorted([files.LOCK_NAME, files.MANIFEST, "summary.json"])
