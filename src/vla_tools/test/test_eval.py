"""`vla eval`: two tiny real artifacts over a 2 x 2 matrix (randomisation off/visual x training phrasings/a user's
phrasing file) through the command itself; the metric helpers on trajectories whose answer is known."""
import json
import re

import numpy as np
import pytest

from vla_core.errors import ConfigError
from vla_policy.fixtures import make_artifact
from vla_tools.cli import main
from vla_tools.eval_matrix import phrasing_of, plan_cells, read_phrasings
from vla_tools.eval_metrics import (COMPARISON_TEST, auroc, command_jerk, compare_success, first_half_uncertainty,
                                    path_length, summarise_cell)

ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the bundled instruction encoder
METRICS = {"episodes", "successes", "success_rate", "ci95", "mean_return", "time_to_success_s", "path_length",
           "jerk_rms", "failure_auroc", "per_phrasing"}
MINE = ["shift the {block} thing over to {zone}", "{zone} is where the {block} block goes"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    models = tmp / "models"
    make_artifact(models, "a", bias=0.05, camera=True, seed=7, uncertainty=True, encoder=ENCODER_ID)
    make_artifact(models, "b", bias=-0.05, camera=True, seed=3, encoder=ENCODER_ID)
    phrasings = tmp / "mine.txt"
    phrasings.write_text("# my phrasings\n" + "\n".join(MINE) + "\n\n")
    out = tmp / "out"
    return out, phrasings, main(["eval", "tiny/a", "tiny/b", "--models-dir", str(models), "--randomization",
                                 "off,visual", "--phrasings", f"train,{phrasings}", "--episodes", "3",
                                 "--max-steps", "15", "--out", str(out)])


def test_every_cell_and_metric_is_in_the_json(evaluated, capsys):
    out, phrasings, rc = evaluated
    assert rc == 0
    result = json.loads((out / "results.json").read_text())
    keys = {(c["artifact"], c["cell"]) for c in result["cells"]}
    assert keys == {(a, f"tabletop/{r}/{p}") for a in ("tiny/a", "tiny/b") for r in ("off", "visual")
                    for p in ("train", "mine.txt")}
    for cell in result["cells"]:
        assert METRICS <= cell.keys()
        assert cell["episodes"] == 3 and 0.0 <= cell["ci95"][0] <= cell["success_rate"] <= cell["ci95"][1] <= 1.0
        assert cell["path_length"] > 0 and cell["jerk_rms"] > 0  # the tiny policies move the pusher, unevenly
        assert sum(p["episodes"] for p in cell["per_phrasing"].values()) == 3
        rows = cell["episodes_detail"]
        assert [r["seed"] for r in rows] == [100_000, 100_001, 100_002]  # every cell runs the same seeds
        # Only artifact a has an uncertainty output.
        assert all((r["uncertainty_first_half"] is not None) == (cell["artifact"] == "tiny/a") for r in rows)
        if cell["phrasing"] == str(phrasings):  # the user's phrasings, said with the episode's own colours
            assert set(cell["per_phrasing"]) == set(MINE)
            assert rows[0]["instruction"].startswith("shift the ") and rows[1]["instruction"].endswith(" block goes")
        else:
            assert not set(cell["per_phrasing"]) & set(MINE)
    # Visual randomisation changes what the camera-driven policies see, so their commands differ.
    jerk = {(c["artifact"], c["cell"]): c["jerk_rms"] for c in result["cells"]}
    assert jerk[("tiny/a", "tabletop/off/train")] != jerk[("tiny/a", "tabletop/visual/train")]
    assert len(result["comparisons"]) == 4
    assert all(c["test"] == COMPARISON_TEST and 0.0 <= c["p_value"] <= 1.0 for c in result["comparisons"])


def test_the_table_json_line_and_html_report(evaluated, capsys):
    out, _, _ = evaluated
    html = (out / "report.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html)) == 2
    assert "p-value" in html and "Fisher" in html and "tabletop/visual/mine.txt" in html
    assert "<script" not in html and "{zone} is where the {block} block goes" in html


def test_the_last_stdout_line_is_one_json_object(tmp_path, capsys):
    models = tmp_path / "models"
    make_artifact(models, "a", bias=0.05, camera=True, seed=7, encoder=ENCODER_ID)
    assert main(["eval", "tiny/a", "--models-dir", str(models), "--phrasings", "heldout", "--episodes", "2",
                 "--max-steps", "5", "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("artifact") and "tabletop/off/heldout" in lines[1]
    summary = json.loads(lines[-1])
    assert summary["report"] == str(tmp_path / "out" / "report.html") and summary["comparisons"] == []
    assert METRICS <= summary["cells"][0].keys() and "episodes_detail" not in summary["cells"][0]


def test_bad_matrix_names_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="randomization 'fog' is not one of .*'full'"):
        plan_cells(["tabletop"], ["off", "fog"], ["heldout"])
    with pytest.raises(ConfigError, match="task 'kitchen'"):
        plan_cells(["kitchen"], ["off"], ["heldout"])
    assert [c.key for c in plan_cells(["arm"], ["visual", "latency"], ["heldout"])] == ["arm/visual/heldout",
                                                                                        "arm/latency/heldout"]
    with pytest.raises(ConfigError, match="does not exist"):
        plan_cells(["tabletop"], ["off"], [str(tmp_path / "missing.txt")])
    bad = tmp_path / "bad.txt"
    bad.write_text("push the {block} to the {target}\n")
    with pytest.raises(ConfigError, match=r"bad.txt:1: .*\{block\} and \{zone\}"):
        read_phrasings(bad)
    bad.write_text("push the {block} block\n")
    with pytest.raises(ConfigError, match="must name both"):
        read_phrasings(bad)


def test_each_instruction_is_traced_to_its_template():
    from vla_sim.envs.arm_instructions import ArmTask, arm_templates, format_arm_instruction
    from vla_sim.envs.instructions import HELDOUT_TEMPLATES, format_instruction
    for template in HELDOUT_TEMPLATES:
        assert phrasing_of("tabletop", "heldout")(format_instruction(template, "blue", "teal")) == template
    mine = phrasing_of("tabletop_hard", tuple(MINE))
    assert mine(format_instruction(MINE[1], "red", "orange")) == MINE[1]
    assert mine("push the red block into the orange zone") == "push the red block into the orange zone"  # not mine
    for skill, task in (("place", ArmTask("place", "red", "purple")), ("stack", ArmTask("stack", "red", "blue"))):
        for template in arm_templates(skill, "all"):
            assert phrasing_of("arm", "all")(format_arm_instruction(template, task)) == template


def test_auroc_ranks_failures():
    failed = [True, True, False, False]
    assert auroc([0.9, 0.8, 0.2, 0.1], failed) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], failed) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], failed) == 0.5
    assert auroc([0.9, 0.3, 0.5, 0.1], failed) == 0.75  # 3 of the 4 (failure, success) pairs in order
    assert auroc([0.9, 0.1], [True, True]) is None  # one class: undefined


def test_summarise_cell_scores_the_first_half_of_each_episode():
    assert first_half_uncertainty([1.0, 3.0, 100.0]) == 2.0  # the first ceil(3 / 2) ticks
    assert first_half_uncertainty([]) is None
    base = {"return": 1.0, "path_length": 0.5, "jerk_rms": 2.0, "phrasing": "p"}
    episodes = [{**base, "success": True, "time_to_success_s": 4.0, "uncertainty_first_half": 0.1},
                {**base, "success": True, "time_to_success_s": 6.0, "uncertainty_first_half": 0.2},
                {**base, "success": False, "time_to_success_s": None, "uncertainty_first_half": 0.7}]
    cell = summarise_cell(episodes)
    assert cell["successes"] == 2 and cell["failure_auroc"] == 1.0 and cell["time_to_success_s"] == 5.0
    assert cell["per_phrasing"] == {"p": {"episodes": 3, "successes": 2, "success_rate": 2 / 3}}
    assert summarise_cell([{**e, "uncertainty_first_half": None} for e in episodes])["failure_auroc"] is None


def test_path_length_of_known_paths():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float)
    assert path_length(square) == pytest.approx(4.0)
    assert path_length(np.array([[0, 0, 0], [3, 4, 0]], float)) == pytest.approx(5.0)
    assert path_length(np.zeros((1, 2))) == 0.0
    with pytest.raises(ValueError, match="must be"):
        path_length(np.zeros(3))


def test_jerk_of_known_command_sequences():
    dt, c = 0.1, 6.0
    t = np.arange(20) * dt
    # Position x = c t^3 / 6 has jerk c; velocity v = c t^2 / 2 has the same jerk; finite differences are exact.
    positions = np.stack([c * t ** 3 / 6, np.zeros_like(t)], axis=1)
    velocities = np.stack([c * t ** 2 / 2, np.zeros_like(t)], axis=1)
    assert command_jerk(positions, dt, position_commands=True) == pytest.approx(c)
    assert command_jerk(velocities, dt, position_commands=False) == pytest.approx(c)
    assert command_jerk(np.ones((20, 2)), dt, position_commands=False) == 0.0  # constant commands: no jerk
    steady = np.stack([0.3 * t, -0.2 * t], axis=1)  # constant acceleration: no jerk either
    assert command_jerk(steady, dt, position_commands=False) == pytest.approx(0.0, abs=1e-9)
    assert command_jerk(velocities[:2], dt, position_commands=False) is None


def test_comparison_p_value():
    same = compare_success(5, 10, 5, 10)
    assert same["p_value"] == pytest.approx(1.0) and same["difference"] == 0.0
    apart = compare_success(0, 20, 20, 20)
    assert apart["p_value"] < 1e-6 and apart["difference"] == 1.0
    with pytest.raises(ValueError, match="is not a count"):
        compare_success(11, 10, 0, 10)


def test_a_missing_or_repeated_artifact_is_named(tmp_path, capsys):
    models = tmp_path / "models"
    art = make_artifact(models, "a", bias=0.05, camera=True, seed=7, encoder=ENCODER_ID)
    common = ["--models-dir", str(models), "--episodes", "1", "--max-steps", "2", "--out", str(tmp_path / "out")]
    assert main(["eval", "tiny/nope", *common]) == 2
    assert "tiny/nope" in capsys.readouterr().err
    assert main(["eval", "tiny/a", str(art.path), *common]) == 2  # the same artifact by name and by path
    assert "is tiny/a again; give each artifact once" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
