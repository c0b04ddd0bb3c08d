from pathlib import Path

import pytest

from vla_bringup.launch_entries import launch_entries
from vla_bringup.profile import available_profiles, load_profile, parse_overrides
from vla_core.errors import ConfigError
from vla_core.params import ParamSpec

WS = Path(__file__).resolve().parents[3]
PARAMS = WS / "params"
SPECS = {
    ("vla_sim", "sim_robot"): (ParamSpec("fps", 10.0, "rate", range=(1.0, 100.0)), ParamSpec("preset", "a", "p")),
    ("vla_teleop", "teleop"): (ParamSpec("device", "expert", "d", choices=("expert", "joy")),),
    ("vla_bringup", "lifecycle_manager"): (ParamSpec("autostart", True, "a"),
                                           ParamSpec("heartbeat_timeout", 2.0, "t", range=(0.05, 60.0))),
}


def lookup(package, executable):
    return SPECS.get((package, executable))


def write(tmp_path: Path, profile: str, files: dict[str, str]) -> Path:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "profiles" / "p.yaml"
    path.write_text(profile)
    return path


PROFILE = """
description: test
use_sim_time: true
manager: {params: mgr.yaml}
nodes:
  - {name: sim_robot, package: vla_sim, executable: sim_robot, params: [sim.yaml], remap: {a/b: c}}
  - {name: teleop, package: vla_teleop, executable: teleop, params: [teleop.yaml]}
"""
FILES = {"sim.yaml": "sim_robot:\n  ros__parameters: {fps: 20.0}\n",
         "teleop.yaml": "teleop:\n  ros__parameters: {device: joy}\n",
         "mgr.yaml": "lifecycle_manager:\n  ros__parameters: {autostart: true}\n"}


def test_profile_entries_and_ros_args(tmp_path):
    write(tmp_path, PROFILE, FILES)
    profile = load_profile("p", tmp_path, parse_overrides(["sim_robot.fps=30"]), lookup)
    names = [e.name for e in profile.entries()]
    assert names == ["sim_robot", "teleop", "lifecycle_manager"]
    assert profile.manager.parameters["node_names"] == ["sim_robot", "teleop"]
    args = profile.nodes[0].ros_args()
    assert args[:3] == ["--ros-args", "-r", "__node:=sim_robot"]
    assert ["--params-file", str(tmp_path / "sim.yaml")] == args[3:5]
    assert "use_sim_time:=true" in args and "fps:=30.0" in args  # overrides come after the files, typed as declared
    assert args.index("fps:=30.0") > args.index("--params-file")
    assert args[-2:] == ["-r", "a/b:=c"]


def test_every_problem_is_reported_with_file_key_and_accepted_values(tmp_path):
    files = dict(FILES, **{"sim.yaml": "sim_robot:\n  ros__parameters: {fps: 0.5, colour: red}\n"})
    profile = PROFILE.replace("teleop.yaml]", "teleop.yaml, gone.yaml]") + "extra: 1\n"
    write(tmp_path, profile, files)
    with pytest.raises(ConfigError) as err:
        load_profile("p", tmp_path, parse_overrides(["teleop.device=mouse"]), lookup)
    text = str(err.value)
    assert "sim.yaml: sim_robot: parameter 'fps' = 0.5: 0.5 is out of range; expected a number in [1, 100]" in text
    assert "unknown parameter 'colour'" in text
    assert "gone.yaml does not exist" in text
    assert "parameter 'device' = 'mouse'" in text and "one of 'expert', 'joy'" in text
    assert "unknown key 'extra'" in text
    assert len(err.value.problems) == 5


def test_unknown_profile_lists_available(tmp_path):
    write(tmp_path, PROFILE, FILES)
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*available profiles: p"):
        load_profile("nope", tmp_path)


@pytest.mark.parametrize("bad", ["sim_robot", "fps=3", ".x=1", "a.b=[unclosed"])
def test_bad_overrides(bad):
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides([bad])


def test_param_file_without_a_section_for_the_node(tmp_path):
    write(tmp_path, PROFILE, dict(FILES, **{"teleop.yaml": "someone_else:\n  ros__parameters: {}\n"}))
    with pytest.raises(ConfigError, match="has no section for node 'teleop'"):
        load_profile("p", tmp_path, None, lookup)


@pytest.mark.parametrize("name", available_profiles(PARAMS))
def test_shipped_profiles_match_what_launch_files_run(name):
    """launch/vla.launch.py and `vla up` read the same profile into the same graph."""
    from vla_bringup.bringup import spec_lookup
    profile = load_profile(name, PARAMS, None, spec_lookup)
    entries = launch_entries(name, str(PARAMS))
    assert [(e["package"], e["executable"], e["name"]) for e in entries] == \
        [(e.package, e.executable, e.name) for e in profile.entries()]
    for launch, entry in zip(entries, profile.entries()):
        assert launch["parameters"][: len(entry.params_files)] == list(entry.params_files)
        assert launch["remappings"] == list(entry.remap)
        assert launch["managed"] == entry.managed
