"""report.html: one self-contained page per run and per sweep, to open in any browser, offline.

Everything is inline: the figures as base64 PNG data URIs, the style in one <style> element, no script, no
external file, no URL (a page copied alone, or opened without a network, shows everything). Every text that
comes from a run (names, parameters, messages) is escaped: run names and parameters are user data.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from pathlib import Path
from urllib.parse import quote

from ...common import files
from ..stats import shown_verdict
from . import time_report
from .format import fmt, pct
from .report import final_line, jacobian_line, resumed_line, verdict_line

PAGE = "report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; display: block; overflow-x: auto; }
table.full { display: table; font-size: 0.8em; } table.full th { white-space: normal; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.verdict { font-size: 1.1em; font-weight: 600; } .note { color: #666; font-size: 0.9em; }
.vanishing { color: #B2182B; } .exploding, .diverged { color: #B2182B; } .healthy { color: #1A7F37; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #666; font-size: 0.85em; }
"""


def _e(value) -> str:
    """Escaped text of any value (run names and parameters are user data)."""
    return html.escape(str(value), quote=True)


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def table(headers: list[str], rows: list[list]) -> str:
    """An HTML table, every cell escaped."""
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"
    body = ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows]
    return "<table>\n" + "\n".join([head, *body]) + "\n</table>"


def figures(directory: Path, first: list[str] = (), only: bool = False) -> list[str]:
    """Every ``directory/figures/*.png`` inline as a data URI (``first``, in that order, then the rest by name;
    ``only``: just ``first``)."""
    found = sorted(p.name for p in (Path(directory) / "figures").glob("*.png") if p.is_file())
    ordered = [Path(f).name for f in first if Path(f).name in found]
    parts = []
    for name in [*ordered, *(n for n in found if n not in ordered and not only)]:
        data = base64.b64encode((directory / "figures" / name).read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(name)}">'
            f"<figcaption>figures/{_e(name)}</figcaption></figure>"
        )
    return parts


LAYER_HEADERS = ["layer", "delta@0", "delta@{last}", "|dW|@0", "|dW|@{last}", "sat@{last}", "dead@{last}", "σw²@0",
                 "E[f′(z)²]@0", "product@0", "SNR@0", "SNR@{last}"]  # fmt: skip
LAYER_NOTE = (
    "delta = ‖dL/dz‖ of each layer's pre-activation over the batch, |dW| = ‖dL/dW‖; r = delta of layer 1 / delta of "
    "the last hidden layer; σw² x E[f′(z)²] = product: the weights' gain times the activation's gain, mean-field "
    "theory's factor on delta² per layer; SNR = ‖mean g‖² / mean ‖g_i − mean g‖² of dW over the batch's examples "
    "(below 1 the examples mostly disagree, whatever the size of delta)."
)


def _layer_rows(records: list[dict]) -> list[list[str]]:
    """Per layer: delta and weight-gradient norms at step 0 and at the end, saturation and dead units at the end."""
    first, last = records[0]["layers"], records[-1]["layers"]
    count = len(first)
    return [
        ["out" if i == count - 1 else str(i + 1), fmt(a.get("delta_norm"), 3), fmt(b.get("delta_norm"), 3),
         fmt(a.get("weight_grad_norm"), 3), fmt(b.get("weight_grad_norm"), 3), pct(b.get("saturation")),
         pct(b.get("dead_fraction")), fmt(a.get("weight_gain"), 3), fmt(a.get("activation_gain"), 3),
         fmt(_product(a.get("weight_gain"), a.get("activation_gain")), 3), fmt(a.get("grad_snr"), 3),
         fmt(b.get("grad_snr"), 3)]
        for i, (a, b) in enumerate(zip(first, last))
    ]  # fmt: skip


def _product(weight_gain, activation_gain):
    return None if weight_gain is None or activation_gain is None else weight_gain * activation_gain


def _theory_line(theory: dict | None) -> str:
    if not theory:
        return "no mean-field prediction for this run"
    if not theory.get("applies"):
        return f"mean-field theory does not apply: {_e(theory.get('reason', ''))}"
    return (
        f"theory (mean field, σ<sub>w</sub><sup>2</sup> = {_e(fmt(theory.get('sigma_w2'), 3))}): "
        f"r = {_e(fmt(theory.get('ratio'), 3))}, ×{_e(fmt(theory.get('per_layer_factor'), 3))} per layer "
        f"→ {_e(theory.get('verdict'))}"
    )


def _settings(path: Path, config) -> dict:
    """The run's settings, with the initializer "auto" chose named (it says more than "auto")."""
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    resolved = (files.read_json(path / "config.json") or {}).get("init_resolved") or {}
    if resolved.get("name"):
        settings["init"] = resolved["name"]
    return settings


def _what(settings: dict) -> str:
    keys = ("act", "init", "depth", "width", "dtype", "data", "steps")
    if settings.get("model") == "rnn":
        keys = ("model", "cell", "init", "width", "seq_len", "dtype", "data", "steps")
    return ", ".join(f"{k} {settings[k]}" for k in keys if k in settings and settings[k] is not None)


def _verdicts(summary: dict, settings: dict) -> list[str]:
    """The verdict at step 0 with its why, the theory, the verdict at the end, the Jacobian, a resume: paragraphs."""
    depth, dtype = settings.get("depth", 0), settings.get("dtype", "float64")
    body = []
    if (summary.get("through_time") or {}).get("applies"):  # a recurrent run: through time
        lines = time_report.lines(summary)
        shown = shown_verdict(summary) or "-"
        body.append(f'<p class="verdict {_e(shown)}">{_e(lines[0])}</p>')
        body += [f"<p>{_e(line.strip())}</p>" for line in lines[1:-1]]
        body.append(f'<p class="{_e(summary.get("verdict_final", ""))}">{_e(lines[-1])}</p>')
    elif "ratio_init" in summary:
        first = verdict_line(summary.get("verdict", "-"), summary["ratio_init"], summary.get("per_layer_factor_init"),
                             depth, dtype, summary.get("gain_init"))  # fmt: skip
        shown = shown_verdict(summary) or "-"
        body.append(f'<p class="verdict {_e(shown)}">{_e(first)} [step 0, at initialization]</p>')
        body.append(f"<p>{_theory_line(summary.get('theory'))}</p>")
        body.append(f'<p class="{_e(summary.get("verdict_final", ""))}">{_e(final_line(summary, depth, dtype))}</p>')
    if jacobian_line(summary.get("jacobian")):
        body.append(f"<p>{_e(jacobian_line(summary.get('jacobian')))}</p>")
    if resumed_line(summary):
        body.append(f'<p class="note">{_e(resumed_line(summary))}</p>')
    return body


def _layers(records: list[dict], summary: dict | None = None) -> list[str]:
    """The layer table and its note, or a recurrent run's step table (nothing for a run without measured
    records)."""
    if not records or not records[0].get("layers"):
        return []
    if (summary or {}).get("through_time", {}).get("applies") and records[0].get("through_time"):
        columns, rows, _ = time_report.time_rows(records, summary)
        entry = summary["through_time"]
        note = time_report.legend(entry["cell"], entry.get("theory") or {})
        return [table([name for name, _ in columns], rows), f'<p class="note">{_e(note)}</p>']
    last = records[-1]["step"]
    headers = [header.format(last=last) for header in LAYER_HEADERS]
    return [table(headers, _layer_rows(records)), f'<p class="note">{_e(LAYER_NOTE)}</p>']


def run_fragment(path, config, records: list[dict], summary: dict) -> str:
    """A run in a notebook (``Run._repr_html_``): what it was, the verdict and why, the final accuracy, the layer
    table and the gradient-flow figure, in one <div> (no page around it, no time: the same run shows the same)."""
    path = Path(path)
    settings = _settings(path, config)
    body = [f"<div><p><b>Run {_e(path.name)}</b>: {_e(_what(settings))}</p>", *_verdicts(summary, settings)]
    if "test_accuracy" in summary:
        accuracy, loss = pct(summary["test_accuracy"]), fmt(summary.get("test_loss"), 4)
        body.append(
            f"<p>test accuracy {_e(accuracy)}, test loss {_e(loss)} after {_e(summary.get('steps_done'))} steps</p>"
        )
    main = "gradient_time.png" if summary.get("through_time") else "gradient_flow.png"
    body += [*_layers(records, summary), *figures(path, [main], only=True), "</div>"]
    return "\n".join(body)


def run_page(path, config, records: list[dict], summary: dict) -> str:
    """The HTML of one run's page: what it was, the verdict, theory, the numbers, the layer table, the figures."""
    path = Path(path)
    settings = _settings(path, config)
    shown = shown_verdict(summary) or "-"
    body = [
        f"<h1>Run {_e(path.name)}</h1>",
        f'<p class="note">{_e(_what(settings))}</p>',
        *_verdicts(summary, settings),
    ]
    body.append("<h2>Summary</h2>")
    numbers = [
        ["status", summary.get("status", "-")],
        ["message", summary.get("message") or "-"],
        ["steps done", f"{summary.get('steps_done', '-')} of {summary.get('steps_requested', '-')}"],
        ["train loss / accuracy", f"{fmt(summary.get('train_loss'), 4)} / {pct(summary.get('train_accuracy'))}"],
        ["test loss / accuracy", f"{fmt(summary.get('test_loss'), 4)} / {pct(summary.get('test_accuracy'))}"],
        ["r at step 0 / at the end", f"{fmt(summary.get('ratio_init'), 3)} / {fmt(summary.get('ratio_final'), 3)}"],
        [
            "per-step factor at step 0" if summary.get("through_time") else "per-layer factor at step 0",
            fmt(summary.get("per_layer_factor_init"), 3),
        ],  # fmt: skip
        ["wall time", f"{fmt(summary.get('wall_time_s'), 3)} s"],
    ]
    body.append(table(["", ""], numbers))
    layers = _layers(records, summary)
    if layers:
        body += ["<h2>Time steps</h2>" if summary.get("through_time") else "<h2>Layers</h2>", *layers]
    drawn = figures(path, summary.get("figures") or [], only=True)  # what the run drew: never a picture of yours
    why = summary.get("figures_skipped") or summary.get("figures_error") or "the run was made with --no-figures"
    body += ["<h2>Figures</h2>", *(drawn or [f'<p class="note">no figures: {_e(why)}</p>'])]
    return _page(f"tinygrad_act run {path.name}: {shown}", body)


def write_run_page(path, config, records: list[dict], summary: dict) -> dict:
    """Write ``path/report.html`` (with the figures the run drew, if any): {} or {"report_html_error": ...}
    (never fatal: a page must never lose the run). A run the file system refused ("failed") gets none."""
    if summary.get("status") == "failed":
        return {}
    try:
        files.atomic_write(Path(path) / PAGE, run_page(path, config, records, summary))
    except Exception as error:  # say what went wrong in the summary
        return {"report_html_error": f"{type(error).__name__}: {error}"}
    return {}


def sweep_page(root, headers: list[str], cells: list[list], runs: list[str], settings: dict | None = None) -> str:
    """The HTML of a sweep's page: the settings every run shares, its whole table (each run's name a link to the
    run's own page) and its figures inline."""
    root = Path(root)
    rows = []
    for row, run in zip(cells, runs):
        page = root / "runs" / run / PAGE
        link = f'<a href="{_e(quote(f"runs/{run}/{PAGE}"))}">{_e(run)}</a>' if page.is_file() else _e(run)
        rows.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + f"<td>{link}</td></tr>")
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in [*headers, "run"]) + "</tr>"
    body = [f"<h1>Sweep {_e(root.name)}</h1>", f'<p class="note">{len(cells)} runs; each name links to its page</p>']
    if settings:
        shared = ", ".join(f"{key} {value}" for key, value in settings.items())
        body.append(f"<p>Every run: {_e(shared)}</p>")
    body += ['<table class="full">', head, *rows, "</table>", "<h2>Figures</h2>", *figures(root)]
    return _page(f"tinygrad_act sweep {root.name}", body)


def write_sweep_page(root, headers: list[str], cells: list[list], runs: list[str], settings: dict | None = None):
    """Write ``root/report.html`` whole (files.atomic_write)."""
    files.atomic_write(Path(root) / PAGE, sweep_page(root, headers, cells, runs, settings))
