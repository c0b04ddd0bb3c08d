import base64
import re

import pytest

from vla_tools.report import print_summary, render_loop_report, write_loop_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
EVIL = "<script>alert('x')</script> & pick the cube"


def full_report() -> dict:
    history = lambda scale: [{"epoch": e, "train/loss": scale / (e + 1), "val/loss": 1.2 * scale / (e + 1),
                              "val/action_mae/x": 0.1} for e in range(8)]
    return {
        "title": "loop <run> 1", "created": "2025-01-02T03:04:05+00:00",
        "config": {"episodes": 20, "rounds": 2, "policy": "mlp", "note": "<b>bold</b>"},
        "stages": [{"name": "record", "seconds": 61.5}, {"name": "train", "seconds": 300.2},
                   {"name": "hot-swap", "seconds": 1.4}, {"name": "evaluate", "seconds": 95.0}],
        "rounds": [{"round": 1, "success_rate": 0.65, "successes": 13, "episodes": 20, "ci95": [0.4329, 0.8188],
                    "instruction_set": "train", "interventions": 4, "artifact": "models/mlp/v1"},
                   {"round": 2, "success_rate": 0.95, "successes": 19, "episodes": 20,
                    "instruction_set": "held-out", "artifact": "models/mlp/v2"}],
        "training": [{"round": 1, "history": history(1.0)}, {"round": 2, "history": history(0.5)}],
        "latency_ms": [2.0 + 0.01 * i for i in range(500)] + [9.5],
        "swap": {"max_command_gap_ms": 33.4, "missed_ticks": 0, "period_ms": 33.3},
        "summary": {"final success rate": 0.95, "total minutes": 7.6, "goal met": True},
        "episodes": [{"round": 1, "seed": 1000 + i, "instruction": EVIL if i == 3 else "pick the red cube",
                      "success": i % 3 != 0, "steps": 80 + i} for i in range(20)],
    }


def empty_report() -> dict:
    return {"title": "nothing yet", "created": "2025-01-02T03:04:05+00:00", "config": {},
            "stages": [{"name": "record", "seconds": 0.0}], "rounds": [], "training": [], "latency_ms": [],
            "swap": {}, "summary": {}, "episodes": []}


def images(text: str) -> list[bytes]:
    return [base64.b64decode(m, validate=True) for m in IMG.findall(text)]


def assert_self_contained(text: str) -> None:
    assert 'src="http' not in text and "href=\"http" not in text and "<script" not in text.lower()
    assert text.count("<img ") == len(IMG.findall(text))  # every image is inline


def test_full_report_is_self_contained_with_four_png_plots(tmp_path):
    path = write_loop_report(tmp_path / "out" / "loop.html", full_report())
    assert path == tmp_path / "out" / "loop.html"
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    pngs = images(text)
    assert len(pngs) == 4  # stage bars, success per round, loss curves, latency histogram
    assert all(p.startswith(PNG_SIGNATURE) and len(p) > 1000 for p in pngs)
    assert "<details>" in text and text.count("<tr>") >= 20
    assert "65.0%" in text and "95.0%" in text and "models/mlp/v2" in text
    assert "43.3% – 81.9%" in text  # round 1's interval; round 2 has none: a dash


def test_strings_are_escaped(tmp_path):
    text = write_loop_report(tmp_path / "loop.html", full_report()).read_text(encoding="utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; pick the cube" in text
    assert "loop &lt;run&gt; 1" in text and "&lt;b&gt;bold&lt;/b&gt;" in text


def test_empty_report_renders_with_notes_instead_of_plots(tmp_path):
    text = write_loop_report(tmp_path / "loop.html", empty_report()).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert len(images(text)) == 1  # only the stage chart; the other three are notes
    assert "the success plot is omitted" in text
    assert "the loss plot is omitted" in text
    assert "the latency histogram is omitted" in text
    assert "No episodes recorded." in text


def test_minimal_dict_without_optional_keys_renders(tmp_path):
    text = write_loop_report(tmp_path / "loop.html", {"title": "t"}).read_text(encoding="utf-8")
    assert_self_contained(text)
    assert images(text) == [] and "No stages were timed." in text


def test_training_history_without_positive_losses_omits_the_loss_plot():
    report = empty_report()
    report["training"] = [{"round": 1, "history": [{"epoch": 0, "train/loss": 0.0, "val/loss": None}]}]
    assert "the loss plot is omitted" in render_loop_report(report)


@pytest.mark.parametrize("rate", [95.0, -0.1, float("nan")])
def test_success_rate_outside_a_fraction_is_refused(rate):
    report = empty_report()
    report["rounds"] = [{"round": 3, "success_rate": rate, "successes": 19, "episodes": 20,
                         "instruction_set": "train", "artifact": "a"}]
    with pytest.raises(ValueError, match="round 3: success_rate"):
        render_loop_report(report)


def test_print_summary_mentions_stages_each_round_latency_and_swap():
    lines: list[str] = []
    print_summary(full_report(), say=lines.append)
    text = "\n".join(lines)
    assert "round 1: success 65.0% (13/20) [95% 43.3%-81.9%] on train, trained with 4 more intervention frames" \
        in text
    assert "round 2: success 95.0% (19/20) on held-out" in text
    assert "train 300.2 s" in text and "total 458.1 s" in text
    assert re.search(r"p50 \d+\.\d\d ms, p99 \d+\.\d\d ms \(501 samples\)", text)
    assert "max command gap 33.4 ms" in text and "0 missed ticks" in text


def test_print_summary_of_an_empty_report():
    lines: list[str] = []
    print_summary(empty_report(), say=lines.append)
    assert lines[0].startswith("nothing yet") and "no evaluation rounds" in lines
