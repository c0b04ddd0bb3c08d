"""The `vla eval` report: one self-contained HTML file (inline CSS, plots as base64 PNG, no JavaScript), drawn
from the dict eval_matrix.run_matrix returns. Every string from it is escaped. No rclpy here."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_tools.report import _CSS, _e, _figure, _fmt, _img, _key_values, _note, _pct, _table

_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2")


def _success_plot(result: dict) -> str:
    """Success per cell, one bar per artifact, with the 95% Wilson interval as error bars."""
    cells = list(dict.fromkeys(c["cell"] for c in result["cells"]))
    names = result["artifacts"]
    fig, ax = _figure(max(6.0, 1.2 * len(cells) * max(1, len(names)) + 1.5), 3.6)
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        rows = [next(c for c in result["cells"] if c["artifact"] == name and c["cell"] == key) for key in cells]
        rates = np.array([r["success_rate"] for r in rows])
        low = rates - np.array([r["ci95"][0] for r in rows])
        high = np.array([r["ci95"][1] for r in rows]) - rates
        x = np.arange(len(cells)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, rates, width, yerr=[low, high], capsize=3, label=name, color=_COLOURS[i % len(_COLOURS)])
    ax.set_xticks(range(len(cells)), cells, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (95% Wilson interval)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _img(fig, "success per cell")


def _steps_plot(result: dict) -> str:
    """Episode length per cell and artifact (successes and failures), as box plots."""
    data, labels = [], []
    for c in result["cells"]:
        data.append([e["steps"] for e in c["episodes_detail"]])
        labels.append(f"{c['artifact']}\n{c['cell']}")
    fig, ax = _figure(max(6.0, 0.9 * len(data) + 1.5), 3.4)
    ax.boxplot(data)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("control steps per episode")
    ax.grid(axis="y", alpha=0.3)
    return _img(fig, "episode length per cell")


def _cells_table(result: dict) -> str:
    header = ["artifact", "cell", "success", "95% CI", "mean return", "time to success (s)", "path length",
              "jerk RMS", "failure AUROC"]
    rows = [[_e(c["artifact"]), _e(c["cell"]), _e(f"{c['successes']}/{c['episodes']} ({_pct(c['success_rate'])})"),
             _e(f"{_pct(c['ci95'][0])} .. {_pct(c['ci95'][1])}"),
             *(_e(_fmt(c[k]) if c[k] is not None else "n/a")
               for k in ("mean_return", "time_to_success_s", "path_length", "jerk_rms", "failure_auroc"))]
            for c in result["cells"]]
    return _table(header, rows, numeric=set(range(2, 9)))


def _p_cell(p: float) -> str:
    text = _e(f"{p:.3g}")
    return f'<span class="ok">{text}</span>' if p < 0.05 else text


def _comparison_table(result: dict) -> str:
    if not result["comparisons"]:
        return _note("One artifact: nothing to compare. Give two to compare them cell by cell.")
    rows = [[_e(c["cell"]), _e(f"{c['a']}: {_pct(c['success_rate_a'])}"), _e(f"{c['b']}: {_pct(c['success_rate_b'])}"),
             _e(f"{100 * c['difference']:+.1f} pt"),
             _p_cell(c["p_value"])]
            for c in result["comparisons"]]
    return (_table(["cell", "a", "b", "b - a", "p-value"], rows, numeric={3, 4}) +
            _note("p-value: Fisher's exact test, two-sided, on the success counts of the cell (both artifacts ran "
                  "the same seeds). Below 0.05 is marked; where the artifacts do not differ, about one cell in "
                  "twenty is marked by chance."))


def _phrasing_table(result: dict) -> str:
    rows = [[_e(c["artifact"]), _e(c["cell"]), _e(p),
             _e(f"{v['successes']}/{v['episodes']} ({_pct(v['success_rate'])})")]
            for c in result["cells"] for p, v in sorted(c["per_phrasing"].items())]
    return _table(["artifact", "cell", "phrasing", "success"], rows, numeric={3})


def render_eval_report(result: dict, config: dict) -> str:
    title = "vla eval: " + " vs ".join(result["artifacts"])
    auroc_note = ("Failure AUROC: how well the mean uncertainty over the first half of an episode ranks the failed "
                  "episodes above the successful ones (1 perfect, 0.5 chance); n/a without an uncertainty output "
                  "or when a cell has only successes or only failures.")
    body = [f"<h1>{_e(title)}</h1>", f'<p class="sub">created {_e(config.get("created", ""))}, seeds '
            f'{_e(result["seeds"][0])}..{_e(result["seeds"][1])}</p>',
            "<h2>Success per cell</h2>", _success_plot(result),
            "<h2>Figures per cell</h2>", _cells_table(result), _note(auroc_note),
            "<h2>Comparison</h2>", _comparison_table(result),
            "<h2>Episode length</h2>", _steps_plot(result),
            "<h2>Success per phrasing</h2>", _phrasing_table(result),
            "<h2>Configuration</h2>", _key_values(config)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><main>" + "\n".join(body) + "</main></body></html>\n")


def write_eval_report(path: Path, result: dict, config: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_eval_report(result, config))
    return path
