"""The whole-loop report: one self-contained HTML file (inline CSS, plots as base64 PNG, no JavaScript).

A loop run (record -> train -> hot-swap -> evaluate, one or more rounds) hands ``write_loop_report`` a plain
dict, the same one it writes as JSON next to the HTML:

  title: str, created: ISO 8601 str, config: {flag: value}, summary: {headline: value}
  stages: [{name, seconds}]
  rounds: [{round, success_rate (fraction in [0, 1]), successes, episodes, ci95 ([low, high], optional),
            instruction_set, interventions (optional), artifact}]
  training: [{round, history: [{epoch, "train/loss", "val/loss", ...}]}]
  latency_ms: [policy tick latency samples, ms]
  swap: {max_command_gap_ms, missed_ticks, period_ms}
  episodes: [{round, seed, instruction, success, steps}]

Any of rounds, training, latency_ms and episodes may be empty; the plot that needs it is then replaced by a
note. Every string from the dict is escaped. No rclpy here.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

SUCCESS_GOAL = 0.9

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
       background: #f5f7fa; margin: 0; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh;
       box-shadow: 0 0 12px rgba(0,0,0,.06); }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e4e7eb; }
.sub { color: #7b8794; margin: 0 0 16px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 12px 4px 0; text-align: left; vertical-align: top; border-bottom: 1px solid #f0f2f5; }
th { color: #52606d; font-weight: 600; }
td.num, th.num { text-align: right; }
.headline td:first-child { color: #52606d; }
.headline td:last-child { font-weight: 600; }
.ok { color: #1f7a3a; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
.note { color: #7b8794; font-style: italic; margin: 6px 0 12px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0 12px; }
details summary { cursor: pointer; color: #3e4c59; margin: 6px 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f5f7fa; padding: 1px 4px;
       border-radius: 3px; }
.grid { display: flex; gap: 32px; flex-wrap: wrap; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value) -> str:
    """A value as short display text (not yet escaped)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _ci(r: dict) -> tuple[float, float] | None:
    ci = r.get("ci95")
    return (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def _pct(rate: float) -> str:
    return f"{100.0 * rate:.1f}%"


def _check(report: dict) -> None:
    problems = [f"round {r.get('round')}: success_rate {r.get('success_rate')!r} is not a fraction in [0, 1] "
                "(give successes / episodes, not a percentage)"
                for r in report.get("rounds") or []
                if not 0.0 <= float(r.get("success_rate", float("nan"))) <= 1.0]
    if problems:
        raise ValueError("loop report: " + "; ".join(problems))


def _percentiles(samples) -> tuple[float, float]:
    a = np.asarray(samples, dtype=float)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


# ---- plots ---------------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    # Figure without pyplot: no global state, no backend switch, safe in any process.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def _img(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _stage_plot(stages: list[dict]) -> str:
    fig, ax = _figure(7.5, 0.5 + 0.4 * len(stages))
    names = [str(s["name"]) for s in stages][::-1]
    seconds = [float(s["seconds"]) for s in stages][::-1]
    # Positions, not category labels: two stages with the same name stay two bars.
    bars = ax.barh(range(len(names)), seconds, color="#4c78a8")
    ax.set_yticks(range(len(names)), names)
    ax.bar_label(bars, labels=[f"{s:.1f} s" for s in seconds], padding=3, fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(seconds) * 1.15 if max(seconds) > 0 else 1)
    ax.grid(axis="x", alpha=0.3)
    return _img(fig, "time per stage")


def _loss_plot(training: list[dict]) -> str | None:
    """Train (solid) and validation (dashed) loss per round on a log axis; None when nothing is plottable."""
    fig, ax = _figure(7.5, 3.8)
    plotted = False
    for i, run in enumerate(training):
        color = f"C{i % 10}"
        for key, style, label in (("train/loss", "-", "train"), ("val/loss", "--", "val")):
            points = [(row["epoch"], float(row[key])) for row in run.get("history") or []
                      if row.get(key) is not None and math.isfinite(float(row[key])) and float(row[key]) > 0]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, color=color, marker="." if len(xs) < 40 else None,
                        label=f"round {run.get('round')} {label}")
                plotted = True
    if not plotted:
        return None
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    return _img(fig, "training loss per round")


def _success_plot(rounds: list[dict]) -> str:
    fig, ax = _figure(6.0, 3.4)
    labels = [str(r["round"]) for r in rounds]
    rates = [100.0 * float(r["success_rate"]) for r in rounds]
    colors = ["#54a24b" if rate >= 100 * SUCCESS_GOAL else "#e45756" for rate in rates]
    intervals = [_ci(r) for r in rounds]
    errors = None
    if all(ci is not None for ci in intervals):  # 95% interval of each rate, as error bars
        errors = [[rate - 100 * lo for rate, (lo, _) in zip(rates, intervals)],
                  [100 * hi - rate for rate, (_, hi) in zip(rates, intervals)]]
    bars = ax.bar(range(len(labels)), rates, color=colors, width=0.6, yerr=errors, capsize=4,
                  error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.set_xticks(range(len(labels)), labels)
    ax.bar_label(bars, labels=[f"{rate:.0f}%" for rate in rates], padding=2, fontsize=8)
    ax.axhline(100 * SUCCESS_GOAL, color="#333", linestyle="--", linewidth=1,
               label=f"goal {100 * SUCCESS_GOAL:.0f}%")
    ax.set_ylim(0, 110)
    ax.set_xlabel("round")
    ax.set_ylabel("success rate (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _img(fig, "success rate per round")


def _latency_plot(samples: list[float]) -> str:
    fig, ax = _figure(6.0, 3.4)
    p50, p99 = _percentiles(samples)
    ax.hist(samples, bins=min(60, max(10, len(samples) // 10)), color="#72b7b2")
    ax.axvline(p50, color="#1f2933", linestyle="--", linewidth=1, label=f"p50 {p50:.2f} ms")
    ax.axvline(p99, color="#e45756", linestyle="--", linewidth=1, label=f"p99 {p99:.2f} ms")
    ax.set_xlabel("policy tick latency (ms)")
    ax.set_ylabel("ticks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _img(fig, "policy tick latency")


# ---- HTML ----------------------------------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    """``rows`` cells are already HTML; header cells are escaped here."""
    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="num">{text}</{tag}>' if i in numeric else f"<{tag}>{text}</{tag}>"
    head = "".join(cell("th", i, _e(h)) for i, h in enumerate(header)) if header else ""
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}>" + (f"<thead><tr>{head}</tr></thead>" if head else "") + f"<tbody>{body}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _key_values(data: dict, cls: str = "") -> str:
    return _table([], [[_e(k), _e(_fmt(v))] for k, v in data.items()], cls=cls)


def _stages_section(stages: list[dict]) -> str:
    if not stages:
        return _note("No stages were timed.")
    total = sum(float(s["seconds"]) for s in stages)
    rows = [[_e(s["name"]), f"{float(s['seconds']):.1f}",
             f"{100 * float(s['seconds']) / total:.0f}%" if total > 0 else ""] for s in stages]
    rows.append(["<b>total</b>", f"<b>{total:.1f}</b>", ""])
    return _table(["stage", "seconds", "share"], rows, numeric={1, 2}) + _stage_plot(stages)


def _rounds_section(rounds: list[dict]) -> str:
    if not rounds:
        return _note("No evaluation rounds: the success plot is omitted.")
    rows = []
    for r in rounds:
        rate = float(r["success_rate"])
        klass = "ok" if rate >= SUCCESS_GOAL else "bad"
        ci = _ci(r)
        rows.append([_e(r["round"]), f'<span class="{klass}">{_e(_pct(rate))}</span>',
                     _e(f"{_pct(ci[0])} – {_pct(ci[1])}") if ci else "–",
                     f"{_e(r.get('successes', ''))} / {_e(r.get('episodes', ''))}",
                     _e(r.get("instruction_set", "")), _e(_fmt(r.get("interventions", "–"))),
                     f"<code>{_e(r.get('artifact', ''))}</code>"])
    table = _table(["round", "success", "95% interval", "episodes", "instruction set", "interventions",
                    "artifact"], rows, numeric={1, 3, 5})
    return table + _success_plot(rounds)


def _training_section(training: list[dict]) -> str:
    img = _loss_plot(training) if training else None
    if img is None:
        return _note("No training history with positive losses: the loss plot is omitted.")
    rows = []
    for run in training:
        history = run.get("history") or []
        last = history[-1] if history else {}
        rows.append([_e(run.get("round")), _e(len(history)), _e(_fmt(last.get("train/loss"))),
                     _e(_fmt(last.get("val/loss")))])
    return _table(["round", "epochs", "final train loss", "final val loss"], rows, numeric={1, 2, 3}) + img


def _latency_section(samples: list[float], swap: dict) -> str:
    parts = []
    if samples:
        p50, p99 = _percentiles(samples)
        parts.append(_table(["samples", "p50 (ms)", "p99 (ms)", "max (ms)"],
                            [[_e(len(samples)), f"{p50:.2f}", f"{p99:.2f}", f"{max(samples):.2f}"]],
                            numeric={0, 1, 2, 3}))
        parts.append(_latency_plot(samples))
    else:
        parts.append(_note("No latency samples: the latency histogram is omitted."))
    if swap:
        parts.append("<h2>Hot swap</h2>")
        parts.append(_table(["max command gap (ms)", "missed ticks", "control period (ms)"],
                            [[_e(_fmt(swap.get("max_command_gap_ms"))), _e(_fmt(swap.get("missed_ticks"))),
                              _e(_fmt(swap.get("period_ms")))]], numeric={0, 1, 2}))
    return "".join(parts)


def _episodes_section(episodes: list[dict]) -> str:
    if not episodes:
        return _note("No episodes recorded.")
    ok = sum(1 for e in episodes if e.get("success"))
    rows = [[_e(e.get("round", "")), _e(e.get("seed", "")), _e(e.get("instruction", "")),
             '<span class="ok">yes</span>' if e.get("success") else '<span class="bad">no</span>',
             _e(e.get("steps", ""))] for e in episodes]
    return (f"<details><summary>{len(episodes)} episodes, {ok} successful (click to expand)</summary>"
            + _table(["round", "seed", "instruction", "success", "steps"], rows, numeric={1, 4})
            + "</details>")


def render_loop_report(report: dict) -> str:
    """The report as one HTML document (str). Raises ValueError for a success_rate outside [0, 1]."""
    _check(report)
    title = report.get("title") or "VLA loop run"
    body = [f"<h1>{_e(title)}</h1>", f'<p class="sub">created {_e(report.get("created", ""))}</p>',
            "<h2>Headline</h2>",
            _key_values(report["summary"], cls="headline") if report.get("summary") else _note("No summary."),
            "<h2>Stages</h2>", _stages_section(report.get("stages") or []),
            "<h2>Success per round</h2>", _rounds_section(report.get("rounds") or []),
            "<h2>Training</h2>", _training_section(report.get("training") or []),
            "<h2>Policy tick latency</h2>", _latency_section(report.get("latency_ms") or [], report.get("swap") or {}),
            "<h2>Episodes</h2>", _episodes_section(report.get("episodes") or []),
            "<h2>Configuration</h2>",
            _key_values(report["config"]) if report.get("config") else _note("No configuration recorded.")]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><main>" + "\n".join(body) + "</main></body></html>\n")


def write_loop_report(path: Path, report: dict) -> Path:
    """Write the loop report to ``path`` (parents created) as one self-contained HTML file; returns the path."""
    path = Path(path)
    text = render_loop_report(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def print_summary(report: dict, say=print) -> None:
    """A compact text version: stage times, success per round, latency p50/p99, hot-swap gap."""
    say(f"{report.get('title') or 'VLA loop run'} ({report.get('created', '')})")
    stages = report.get("stages") or []
    if stages:
        total = sum(float(s["seconds"]) for s in stages)
        say("stages: " + ", ".join(f"{s['name']} {float(s['seconds']):.1f} s" for s in stages)
            + f" (total {total:.1f} s)")
    for r in report.get("rounds") or []:
        ci = _ci(r)
        interval = f" [95% {_pct(ci[0])}-{_pct(ci[1])}]" if ci else ""
        extra = f", trained with {r['interventions']} more intervention frames" \
            if r.get("interventions") is not None else ""
        say(f"round {r['round']}: success {_pct(float(r['success_rate']))} ({r.get('successes')}/{r.get('episodes')})"
            f"{interval} on {r.get('instruction_set', '?')}{extra}")
    if not report.get("rounds"):
        say("no evaluation rounds")
    samples = report.get("latency_ms") or []
    if samples:
        p50, p99 = _percentiles(samples)
        say(f"policy tick latency: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(samples)} samples)")
    swap = report.get("swap") or {}
    if swap:
        say(f"hot swap: max command gap {_fmt(swap.get('max_command_gap_ms'))} ms "
            f"(period {_fmt(swap.get('period_ms'))} ms), {_fmt(swap.get('missed_ticks'))} missed ticks")
