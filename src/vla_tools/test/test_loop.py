"""The demo loop's options, without a graph."""
import pytest


def test_the_demo_takes_its_step_count_from_the_recipe_or_says_what_to_pass(tmp_path):
    from vla_tools.loop import LoopError, recipe_steps
    assert recipe_steps("params/train/tabletop_act.yaml") > 0
    (tmp_path / "r.yaml").write_text("train:\n  lr: 0.001\n")
    for recipe in (str(tmp_path / "r.yaml"), ""):
        with pytest.raises(LoopError, match="--steps"):
            recipe_steps(recipe)
