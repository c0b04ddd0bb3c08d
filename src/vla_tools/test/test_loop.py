"""The demo loop's options, without a graph."""
import pytest


def test_the_demo_takes_its_step_count_from_the_recipe_or_says_what_to_pass(tmp_path):
    from vla_tools.loop import LoopError, recipe_steps
    assert recipe_steps("params/train/tabletop_act.yaml") > 0
    (tmp_path / "r.yaml").write_text("train:\n  lr: 0.001\n")
    for recipe in (str(tmp_path / "r.yaml"), ""):
        with pytest.raises(LoopError, match="--steps"):
            recipe_steps(recipe)


def test_a_corrector_answering_help_needs_an_uncertain_policy_and_a_threshold():
    from vla_tools.loop import LoopOptions, corrector_problem
    assert corrector_problem(LoopOptions()) == ""
    problem = corrector_problem(LoopOptions(corrector="on_help"))
    assert "--train-set policy.ensemble_heads=5" in problem and "--set policy.help_threshold=T" in problem
    ready = LoopOptions(corrector="on_error_or_help", train_overrides=("policy.ensemble_heads=5",),
                        overrides=("policy.help_threshold=0.3",))
    assert corrector_problem(ready) == ""
    assert "help_threshold" in corrector_problem(LoopOptions(corrector="on_help",
                                                             train_overrides=("policy.ensemble_heads=5",),
                                                             overrides=("policy.help_threshold=zero",)))
    assert "is not one of" in corrector_problem(LoopOptions(corrector="sometimes"))
