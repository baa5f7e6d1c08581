"""The findings report on tiny sweeps: each finding's sweep is replaced by one with the same grid keys and tiny
values, so every analysis runs on real run directories in a second. The README gets the finding's section
(markers, claim, source, reproduce line, a table of numbers, figures that exist); regenerating one finding
keeps the others; and no analysis fails or warns (warnings are errors) on runs that diverged or whose
gradients vanished to exactly zero."""

import math
import re

import hostile
import pytest

from tinygrad_act import findings, makeargs
from tinygrad_act.cli import main
from tinygrad_act.common import files
from tinygrad_act.findings import common
from tinygrad_act.lab.run import experiment
from tinygrad_act.lab.show import plots, report
from tinygrad_act.lab.sweep import grid as sweeps

NAMES = [f.name for f in findings.FINDINGS]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)")
TINY_FIXED = {"width": 8, "steps": 3, "data": "spirals:n=200", "batch_size": 16, "log_every": 1}
RNN = {"model": "rnn", "data": "adding:n_train=32,n_test=8"}  # the findings through time: recurrent runs

# The real grids' keys with tiny values (checked against experiments/*.toml below); fixed settings the analyses read.
HEALTHY = {
    "vanishing_depth": ({"act": ["sigmoid", "relu"], "depth": [2, 3], "seed": [0]}, {"init": "auto"}),
    "glorot_bengio": ({"act": ["sigmoid", "tanh"], "init": ["standard", "xavier_uniform"], "seed": [0]}, {"depth": 3}),
    "he_2015": ({"init": ["xavier_normal", "he_normal"], "seed": [0, 1]}, {"act": "relu", "depth": 3}),
    "dying_relu": ({"act": ["relu", "leaky_relu"], "lr": [0.02, 0.5], "seed": [0]}, {"init": "auto", "depth": 3}),
    "exploding": (
        {"act": ["tanh", "relu"], "init": ["xavier_normal", "xavier_normal:gain=4"], "clip": [0.0, 1.0], "seed": [0]},
        {"depth": 3},
    ),
    "rescue": ({"act": ["sigmoid"], "residual": [False, True], "norm": ["none", "layer"], "seed": [0]}, {"depth": 3}),
    "selu": ({"act": ["selu", "relu"], "init": ["lecun_normal", "he_normal"], "seed": [0]}, {"depth": 4}),
    "edge_of_chaos": (
        {"init": ["xavier_normal:gain=0.5", "xavier_normal:gain=2.0"], "depth": [2, 3], "seed": [0]},
        {"act": "tanh"},
    ),
    "edge_of_chaos_full": (  # the full grid: the light one's runs and more (FULL=1)
        {"init": ["xavier_normal:gain=0.5", "xavier_normal:gain=2.0"], "depth": [2, 3, 4], "seed": [0, 1]},
        {"act": "tanh"},
    ),
    "orthogonal": (
        {"act": ["identity", "tanh"], "init": ["orthogonal", "xavier_normal"], "seed": [0, 1]},
        {"depth": 3, "steps": 1},
    ),
    "isometry": (
        {
            "act": ["tanh", "relu"],
            "init": ["orthogonal:gain=1.04", "xavier_normal:gain=1.04"],
            "depth": [3, 4],
            "seed": [0],
        },
        {"sigma_b2": 1e-4, "steps": 4},
    ),
    "vanishing_time": ({"cell": ["tanh", "gru"], "seq_len": [4, 6], "seed": [0]}, RNN),
    "exploding_time": (
        {"cell": ["tanh", "relu"], "init": ["orthogonal:gain=0.9", "orthogonal:gain=2"], "clip": [0.0, 1.0]},
        {**RNN, "seq_len": 6},
    ),
    "irnn": ({"cell": ["relu", "tanh"], "init": ["identity", "auto"], "seq_len": [4, 6], "seed": [0]}, RNN),
}

# ReLU, SELU and identity nets diverge: weights scaled by 1e20 overflow within two steps (1e100, depth 3: at step 0
# with no r at all), as does a learning rate near the largest float; sigmoid/tanh runs beside them saturate and
# complete. Logged every 2 steps, so a diverged run's last record has no per-layer statistics (delta_norm null).
G20, G100 = "xavier_normal:gain=1e20", "xavier_normal:gain=1e100"
DIVERGED_FIXED = {"steps": 4, "log_every": 2, "eval_every": 100}
DIVERGED = {
    "vanishing_depth": ({"act": ["relu", "selu"], "depth": [2, 3], "seed": [0]}, {"init": G100}),
    "glorot_bengio": (
        {"act": ["relu", "selu"], "init": ["standard", "xavier_uniform:gain=1e100"], "seed": [0]},
        {"depth": 3},
    ),
    "he_2015": ({"init": ["xavier_normal", "he_normal"], "seed": [0]}, {"act": "identity", "depth": 3, "lr": 1e30}),
    "dying_relu": ({"act": ["relu", "tanh"], "lr": [0.02, 1e30], "seed": [0]}, {"init": G20, "depth": 3}),
    "exploding": ({"act": ["selu", "relu"], "init": [G20, G100], "clip": [0.0, 1.0], "seed": [0]}, {"depth": 3}),
    "rescue": (
        {"act": ["relu", "selu"], "residual": [False, True], "norm": ["none", "layer"], "seed": [0]},
        {"depth": 3, "init": G20},
    ),
    "selu": ({"act": ["selu", "relu"], "init": [G20, G100], "seed": [0]}, {"depth": 4}),
    "edge_of_chaos": (
        {"init": ["xavier_normal:gain=0.5", "xavier_normal:gain=3.0"], "depth": [2, 3], "seed": [0]},
        {"act": "tanh", "lr": 1e308},
    ),
    "orthogonal": (
        {"act": ["identity", "relu"], "init": ["orthogonal:gain=1e100", G20], "seed": [0, 1]},
        {"depth": 3},
    ),
    "isometry": ({"act": ["tanh", "relu"], "init": ["orthogonal:gain=1e100", G20], "depth": [2, 3], "seed": [0]}, {}),
    "vanishing_time": ({"cell": ["tanh", "gru"], "seq_len": [4, 6], "seed": [0]}, {**RNN, "lr": 1e300}),
    "exploding_time": (
        {"cell": ["relu", "tanh"], "init": ["orthogonal:gain=1e20", "orthogonal:gain=2"], "clip": [0.0, 1.0]},
        {**RNN, "seq_len": 6},
    ),
    "irnn": ({"cell": ["relu", "tanh"], "init": ["identity", G20], "seq_len": [4, 6], "seed": [0]}, RNN),
}

# Saturated sigmoid/tanh units (gain 1e20, or a huge step for tanh): phi'(z) is exactly 0, so is every delta, r = 0.
VANISHED = {
    "vanishing_depth": ({"act": ["sigmoid", "tanh"], "depth": [2, 3], "seed": [0]}, {"init": G20}),
    "glorot_bengio": (
        {"act": ["sigmoid", "tanh"], "init": ["standard", "xavier_uniform:gain=1e20"], "seed": [0]},
        {"depth": 3},
    ),
    "he_2015": ({"init": ["xavier_normal", "he_normal"], "seed": [0]}, {"act": "tanh", "depth": 3, "lr": 1e30}),
    "dying_relu": ({"act": ["relu", "tanh"], "lr": [0.02], "seed": [0]}, {"init": G20, "depth": 3}),
    "exploding": (
        {"act": ["tanh", "sigmoid"], "init": ["xavier_normal", G20], "clip": [0.0, 1.0], "seed": [0]},
        {"depth": 3},
    ),
    "rescue": (
        {"act": ["sigmoid", "tanh"], "residual": [False, True], "norm": ["none", "layer"], "seed": [0]},
        {"depth": 3, "init": G20},
    ),
    "selu": ({"act": ["tanh", "sigmoid"], "init": ["lecun_normal", G20], "seed": [0]}, {"depth": 4}),
    "edge_of_chaos": (
        {"init": ["xavier_normal:gain=0.5", "xavier_normal:gain=1e5"], "depth": [2, 3], "seed": [0]},
        {"act": "tanh"},
    ),
    "orthogonal": (
        {"act": ["tanh", "sigmoid"], "init": ["orthogonal:gain=1e20", G20], "seed": [0, 1]},
        {"depth": 3},
    ),
    "isometry": ({"act": ["tanh", "sigmoid"], "init": ["orthogonal:gain=1e20", G20], "depth": [2, 3], "seed": [0]}, {}),
    "vanishing_time": ({"cell": ["tanh", "lstm"], "seq_len": [4, 6], "seed": [0]}, {**RNN, "init": G20}),
    "exploding_time": (
        {"cell": ["tanh", "gru"], "init": ["orthogonal:gain=1e20", "orthogonal"], "clip": [0.0, 1.0]},
        {**RNN, "seq_len": 6},
    ),
    "irnn": ({"cell": ["tanh", "gru"], "init": ["identity", G20], "seq_len": [4, 6], "seed": [0]}, RNN),
}


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAD_ACT_CACHE", str(tmp_path / "cache"))


# The real configs' settings the tiny stand-ins keep: a finding that reads no Jacobian spectrum skips measuring it
# (its cost, the spectrum's theory, was a third of this module's time), as its real sweep does.
KEPT = ("jacobian",)
REAL_KEPT = {name: {k: v for k, v in sweeps.load_config(name).fixed.items() if k in KEPT} for name in HEALTHY}


def tiny_sweep(table: dict, name: str) -> sweeps.Sweep:
    """The tiny stand-in for finding ``name``'s sweep, from ``table`` (HEALTHY, DIVERGED, ...: grid, fixed)."""
    grid, fixed = table[name]
    return sweeps.Sweep(grid, {**TINY_FIXED, **REAL_KEPT.get(name, {}), **fixed}, name, f"tiny {name}")


@pytest.fixture
def tiny_sweeps(monkeypatch):
    """findings.generate loads each finding's sweep through sweep.load_config: serve tiny ones from a table."""
    table = dict(HEALTHY)
    monkeypatch.setattr(sweeps, "load_config", lambda name: tiny_sweep(table, name))
    return table


# Each finding's healthy stand-in sweep is trained once per test session (hostile.made_once: by the first xdist
# worker that asks) and copied by every test that reads it: findings.generate finds its runs complete and analyses
# them (tests that change the grid train their own).
@pytest.fixture(scope="session")
def healthy_runs(tmp_path_factory):
    """``healthy_runs(name, root)``: finding ``name``'s healthy stand-in runs, copied to ``root`` (the sweep's OUT)."""
    made = {}

    def train(name, path):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TINYGRAD_ACT_CACHE", str(path / "cache"))
            sweeps.prefetch([(tiny_sweep(HEALTHY, name), path / name)], jobs=1, progress=False)

    def copy(name, root):
        if name not in made:
            made[name] = hostile.made_once(tmp_path_factory, f"healthy_{name}", lambda path: train(name, path))
        hostile.copy_run(made[name] / name, root)

    return copy


def unrendered(patch) -> None:
    """The findings' figures from here on are made (every line of their code runs) but neither laid out nor
    written: for the tests of the README's text. Each is rendered by the section test on healthy runs and by the
    tests of runs gone wrong on theirs."""
    patch.setattr(plots, "save", lambda fig, path, dpi=plots.DPI, signed="": None)


def generate(names, tmp_path) -> str:
    path = findings.generate(names, runs_root=tmp_path / "runs", out_dir=tmp_path / "out", jobs=1, progress=False)
    assert path == tmp_path / "out" / "README.md"
    return path.read_text()


def section(readme: str, name: str) -> str:
    start, end = f"<!-- finding:{name} -->", f"<!-- /finding:{name} -->"
    assert readme.count(start) == 1 and readme.count(end) == 1, name
    return readme.split(start, 1)[1].split(end, 1)[0]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in text: its rows (header first) as lists of cells."""
    found, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            found.append(current)
            current = []
    return found


def last_records(tmp_path, name):
    """(summary row, metrics records) of every run of a finding's tiny sweep."""
    root = tmp_path / "runs" / name
    rows = sweeps.collect(root, sweeps.load_config(name))
    return [(row, files.read_records(root / "runs" / row["run"])) for row in rows]


def _without_sweep_figures(name, request):
    """A finding's section from its own tables and figures, without the sweep's figures (test_sweep.py draws those,
    on vanished and diverged runs too), but for vanishing_depth, whose section shows two of them (the analyses of
    runs gone wrong go without them: a missing sweep figure is left out of the section)."""
    if name != "vanishing_depth":
        request.getfixturevalue("no_sweep_figures")


# ---- the tiny stand-ins follow the real configs -------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_finding_has_a_config_whose_grid_keys_the_tiny_stand_ins_share(name):
    real = sweeps.load_config(name)
    for table in (HEALTHY, DIVERGED, VANISHED):
        assert set(table[name][0]) == set(real.grid), name
    if name in ("he_2015", "selu", "glorot_bengio"):  # these analyses read the depth from the fixed settings
        assert "depth" in real.fixed


# ---- the README -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_findings_section_has_its_claim_source_reproduce_line_table_of_numbers_and_figures(
    name, tmp_path, tiny_sweeps, healthy_runs, request
):
    _without_sweep_figures(name, request)
    healthy_runs(name, tmp_path / "runs" / name)
    readme = generate([name], tmp_path)
    assert readme.startswith("# Findings")
    number, finding = next((i, f) for i, f in enumerate(findings.FINDINGS, 1) if f.name == name)
    text = section(readme, name)
    assert f"## {number}. {finding.title}" in text
    assert f"**Claim.** {finding.claim}" in text
    if finding.check:  # the check, computed from the runs, right under the claim
        assert f"**Claim.** {finding.claim}\n\n**Check, computed from the runs: " in text
        assert re.search(r"^- .+: \*\*(holds|does not hold|within noise)\*\* \(.+; margin .+\)$", text, re.M), text
    assert f"**Source.** {finding.source}" in text
    assert f"**Reproduce.** `make report ONLY={name}`" in text and f"({name}.toml)" in text
    data_rows = [row for table in tables(text) for row in table[2:]]
    assert any(re.search(r"\d\.\d|\de[-+]\d|\d%", cell) for row in data_rows for cell in row), text
    assert all(set(table[1]) == {"---"} and len(table[0]) == len(table[1]) for table in tables(text))
    assert all(len(row) == len(table[0]) for table in tables(text) for row in table), name
    links = FIGURE_LINK.findall(text)
    assert links, text
    for link in links:
        assert (tmp_path / "out" / link).read_bytes()[:8] == PNG_SIGNATURE, link
    for other in NAMES:  # the other findings are placeholders until they are generated
        if other != name:
            assert "(not generated yet" in section(readme, other)
    rows = sweeps.collect(tmp_path / "runs" / name, sweeps.load_config(name))
    assert len(rows) == len(sweeps.load_config(name).points())


@pytest.mark.usefixtures("no_sweep_figures")  # selu and he_2015 show no sweep figure
def test_regenerating_one_finding_keeps_the_others_and_reuses_finished_runs(
    tmp_path, tiny_sweeps, healthy_runs, monkeypatch
):
    unrendered(monkeypatch)
    for name in ("selu", "he_2015"):
        healthy_runs(name, tmp_path / "runs" / name)
    readme = generate(["selu", "he_2015"], tmp_path)
    assert readme.index("<!-- finding:he_2015 -->") < readme.index("<!-- finding:selu -->")  # report order
    path = tmp_path / "out" / "README.md"
    edited = readme.replace("**Claim.** With LeCun", "**Claim.** KEPT With LeCun")  # selu
    edited = edited.replace("**Claim.** A 30-layer", "**Claim.** STALE A 30-layer")  # he_2015
    assert edited.count("KEPT") == edited.count("STALE") == 1
    path.write_text(edited)
    calls = []
    monkeypatch.setattr(experiment, "run", lambda *args, **kwargs: calls.append(args))
    readme = generate(["he_2015"], tmp_path)
    assert calls == []  # the runs are complete: regenerating re-analyses, it does not retrain
    assert section(readme, "selu") == section(edited, "selu")
    assert "STALE" not in readme and "**Claim.** A 30-layer" in section(readme, "he_2015")
    assert readme.count("# Findings") == 1 and readme.count("<!-- finding:") == len(NAMES)


def test_an_unknown_finding_is_a_value_error_naming_the_choices_and_nothing_is_written(tmp_path, tiny_sweeps):
    with pytest.raises(ValueError, match="no_such_finding") as error:
        findings.generate(["selu", "no_such_finding"], runs_root=tmp_path / "runs", out_dir=tmp_path / "out")
    assert all(name in str(error.value) for name in NAMES)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.usefixtures("no_sweep_figures")  # rescue and selu show no sweep figure
def test_report_command_writes_the_readme_and_rejects_an_unknown_finding(
    tmp_path, tiny_sweeps, healthy_runs, monkeypatch, capsys
):
    unrendered(monkeypatch)
    for name in ("rescue", "selu"):
        healthy_runs(name, tmp_path / "runs" / name)
    argv = ["report", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--jobs", "1", "--no-progress"]
    assert main([*argv, "--only", "rescue, selu"]) == 0
    assert f"wrote {tmp_path / 'out' / 'README.md'}" in capsys.readouterr().out
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "(not generated yet" not in section(readme, "rescue") + section(readme, "selu")
    assert main([*argv, "--only", "selu,nope"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope" in err


# ---- analyses on runs gone wrong ------------------------------------------------------------------------------
@pytest.mark.usefixtures("no_sweep_figures")  # the sweep's own figures on such runs: test_sweep.py
@pytest.mark.parametrize("name", NAMES)
def test_an_analysis_takes_diverged_runs_without_per_layer_statistics_without_warnings(name, tmp_path, tiny_sweeps):
    grid, fixed = DIVERGED[name]
    tiny_sweeps[name] = (grid, {**DIVERGED_FIXED, **fixed})
    readme = generate([name], tmp_path)
    runs = last_records(tmp_path, name)
    assert any(row["status"] == "diverged" for row, _ in runs)
    last_deltas = [records[-1]["layers"][0]["delta_norm"] for _, records in runs]
    assert any(delta is None or math.isnan(delta) for delta in last_deltas)  # not measured, or measured nan
    assert tables(section(readme, name))


@pytest.mark.usefixtures("no_sweep_figures")  # the sweep's own figures on such runs: test_sweep.py
@pytest.mark.parametrize("name", NAMES)
def test_an_analysis_takes_gradients_that_vanished_to_zero_without_warnings(name, tmp_path, tiny_sweeps):
    grid, fixed = VANISHED[name]
    tiny_sweeps[name] = (grid, {**fixed, "steps": 2})
    readme = generate([name], tmp_path)
    runs = last_records(tmp_path, name)
    # the last hidden layer's delta, or through time the gradient reaching the first step
    first = [(records[-1].get("through_time") or records[-1]["layers"][-2:])[0] for _, records in runs]
    assert any(entry["delta_norm"] == 0.0 for entry in first)
    assert tables(section(readme, name))


def test_the_report_prose_helpers_format_missing_and_extreme_numbers():
    assert [report.fmt(v) for v in (None, float("nan"), float("inf"), 0, 0.934, 1.2e-12, 45.0)] == [
        "-",
        "-",
        "inf",
        "0.00",
        "0.93",
        "1.2e-12",
        "45",
    ]
    assert report.pct(0.456) == "45.6%" and report.pct(None) == "-"
    assert common.geometric_median([1e-4, 1e-2, 1.0, None, 0.0, float("inf")]) == pytest.approx(1e-2)
    assert common.log_error(10.0, 1.0) == pytest.approx(1.0) and math.isnan(common.log_error(0.0, 1.0))
    assert common.agreement([float("nan")]) == "no run could be compared with theory"


def test_a_findings_figure_is_saved_at_100_dpi_and_linked_under_figures(tmp_path):
    ctx = findings.Context("x", None, [], tmp_path, tmp_path / "out")
    fig, ax = plots.figure(figsize=(2, 1))
    ax.plot([1, 2])
    assert ctx.figure(fig, "plot") == "![x plot](figures/x_plot.png)"
    header = (tmp_path / "out" / "x_plot.png").read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE
    assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (200, 100)


@pytest.mark.usefixtures("no_sweep_figures")
def test_glorot_bengio_names_the_last_layer_of_its_own_depth(tmp_path, tiny_sweeps, healthy_runs, monkeypatch):
    unrendered(monkeypatch)
    healthy_runs("glorot_bengio", tmp_path / "runs" / "glorot_bengio")
    text = section(generate(["glorot_bengio"], tmp_path), "glorot_bengio")
    assert "delta_l / delta_3 at step 0" in text and "delta_5" not in text  # tiny stand-in: depth 3


# ---- a finding's full grid (FULL=1) and its committed table --------------------------------------------------
@pytest.mark.usefixtures("no_sweep_figures")  # neither the report's grid nor the full one: its figures are its own
def test_full_runs_the_heavy_grid_commits_its_rows_and_the_report_reruns_and_compares_a_few(
    tmp_path, tiny_sweeps, healthy_runs, monkeypatch
):
    healthy_runs("edge_of_chaos", tmp_path / "runs" / "edge_of_chaos")  # the report's runs; the full grid's are new
    readme = generate_full(["edge_of_chaos"], tmp_path, full=True)
    committed = files.read_json(tmp_path / "out" / "edge_of_chaos_full.json")
    assert (
        committed["made_by"] == "make report ONLY=edge_of_chaos FULL=1" and committed["sweep"] == "edge_of_chaos_full"
    )
    assert len(committed["rows"]) == 2 * 3 * 2 and committed["fixed"]["act"] == "tanh"
    text = section(readme, "edge_of_chaos")
    assert "**The table below is committed**" in text and "12 runs, edge_of_chaos_full.toml" in text
    assert "4 of 4 are identical to every digit" in text and "0 changed its trained verdict" in text
    assert "reproduce the committed table's trained verdicts: **holds**" in text
    assert "depth 4" in text  # the table is the full grid's, not the report's four runs
    unrendered(monkeypatch)  # drawn above from the full grid's table
    again = section(generate_full(["edge_of_chaos"], tmp_path, full=False), "edge_of_chaos")
    assert again == text  # without FULL the committed table is read back as it was written
    (tmp_path / "out" / "edge_of_chaos_full.json").unlink()
    alone = section(generate_full(["edge_of_chaos"], tmp_path, full=False), "edge_of_chaos")
    assert "has no committed table here" in alone and "depth 4" not in alone


def generate_full(names, tmp_path, full: bool) -> str:
    out = tmp_path / "out"
    return findings.generate(
        names, runs_root=tmp_path / "runs", out_dir=out, jobs=1, progress=False, full=full
    ).read_text()


# ---- finding 10's full grid (FULL=1) and its committed table --------------------------------------------------
@pytest.mark.usefixtures("no_sweep_figures")
def test_isometry_full_grid_is_committed_read_back_and_compared_with_the_reports_own_runs(
    tmp_path, tiny_sweeps, monkeypatch
):
    grid, fixed = tiny_sweeps["isometry"]
    grid = {**grid, "depth": [3]}  # the report's own runs: one depth (the comparison is per run, not per depth)
    tiny_sweeps["isometry"] = (grid, fixed)
    tiny_sweeps["isometry_full"] = ({**grid, "lr": [0.02, 0.05], "seed": [0, 1]}, {**fixed, "steps": 6})
    out = tmp_path / "out"
    readme = generate_full(["isometry"], tmp_path, full=True)
    committed = files.read_json(out / "isometry_full.json")
    assert committed["made_by"] == "make report ONLY=isometry FULL=1" and committed["sweep"] == "isometry_full"
    assert len(committed["rows"]) == 2 * 2 * 2 * 2 and {r["lr"] for r in committed["rows"]} == {0.02, 0.05}
    text = section(readme, "isometry")
    assert "**Training: the table below is committed**" in text and "16 runs, isometry_full.toml" in text
    assert "the report's own runs reproduce the committed spectra: **holds** (4 of 4 identical" in text
    unrendered(monkeypatch)  # both figures, the training race's too, drawn above from the committed table
    again = generate_full(["isometry"], tmp_path, full=False)
    assert section(again, "isometry") == text  # without FULL the committed table is read back as it was written
    (out / "isometry_full.json").unlink()
    alone = section(generate_full(["isometry"], tmp_path, full=False), "isometry")
    assert "no committed table of the full grid here" in alone and "reproduce the committed" not in alone


def test_make_report_full_passes_full_to_the_report_command():
    assert makeargs.arguments("report", {"ONLY": "edge_of_chaos", "FULL": "1"}) == [
        "report",
        "--only",
        "edge_of_chaos",
        "--full",
    ]
    assert makeargs.arguments("report", {"FULL": "0"}) == ["report", "--no-full"]


def test_a_report_whose_findings_drew_no_figure_still_writes_its_readme_in_a_new_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(findings.sweeps, "prefetch", lambda *args, **kwargs: None)
    monkeypatch.setattr(findings, "_analyze", lambda finding, *args: ("**Claim.** measured without figures", None))
    path = findings.generate(["selu"], runs_root=tmp_path / "runs", out_dir=tmp_path / "new" / "out", jobs=1,
                             progress=False)  # fmt: skip
    assert path == tmp_path / "new" / "out" / "README.md" and "measured without figures" in path.read_text()
