"""The RViz2 config and the Foxglove layout show only topics the workspace publishes, with the right types.

Bringing the graph up to list its topics is too slow for this check, so the ground truth is kept here: each
topic the configs may reference, with the node that publishes it in the sim profile, the message type, and
the code (and parameter values) that make its name. A topic renamed in a node, a parameter file or the profile,
or a config that references a topic nobody publishes, fails these tests. No ROS process is started.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest
import yaml

WS = Path(__file__).resolve().parents[1]
RVIZ = WS / "params" / "rviz" / "vla.rviz"
FOXGLOVE = WS / "params" / "foxglove" / "vla.json"
PROFILE = WS / "params" / "profiles" / "sim.yaml"
MONITORING_DOC = WS / "docs" / "monitoring.md"
AGGREGATOR = WS / "params" / "diagnostic_aggregator.yaml"

SIM = "src/vla_sim/vla_sim/sim_node.py"
SHIELD = "src/vla_safety/vla_safety/shield_node.py"
PERCEPTION = "src/vla_perception/vla_perception/perception_node.py"
POLICY = "src/vla_policy/vla_policy/policy_node.py"
LANGUAGE = "src/vla_language/vla_language/language_node.py"
MANAGER = "src/vla_bringup/vla_bringup/manager_node.py"


@dataclass(frozen=True)
class Publisher:
    node: str                                   # node name in the sim profile (its manager for the manager)
    msg: str                                    # message type, package/Name
    file: str                                   # the source that creates the publisher
    code: tuple[str, ...]                       # fragments of that source that make the name and type
    params: tuple[tuple[str, str], ...] = ()    # (parameter file, fragment) that complete a relative name


TOPICS = {
    "/camera/top/image_raw": Publisher(
        "sim_robot", "sensor_msgs/Image", SIM, ('lp(Image, f"camera/{cam}/image_raw"',),
        (("params/sim_robot.yaml", "camera_name: top"),)),
    "/observation/images/top": Publisher(
        "perception", "sensor_msgs/Image", PERCEPTION, ("lp(Image, f\"{p['output_prefix']}/{cam.name}\"",),
        (("params/perception.yaml", "output_prefix: observation/images"),
         ("params/perception.yaml", "contract: params/robots/tabletop_sim.yaml"),
         ("params/robots/tabletop_sim.yaml", "cameras:\n  top:\n"))),
    "/perception/overlay": Publisher(
        "perception", "sensor_msgs/Image", PERCEPTION, ('super().__init__("perception"', 'lp(Image, "~/overlay"')),
    "/safety_shield/markers": Publisher(
        "safety_shield", "visualization_msgs/MarkerArray", SHIELD,
        ('super().__init__("safety_shield"', 'lp(MarkerArray, "~/markers"')),
    "/safety_shield/state": Publisher(
        "safety_shield", "vla_interfaces/ShieldState", SHIELD,
        ('super().__init__("safety_shield"', 'lp(ShieldState, "~/state"')),
    "/cmd_vel": Publisher(
        "safety_shield", "geometry_msgs/Twist", SHIELD, ('(Twist, "cmd_vel") if twist', 'lp(msg_type, suffix'),
        (("params/safety_shield.yaml", "command_type: twist"),)),
    "/policy/cmd_vel": Publisher(
        "policy", "geometry_msgs/Twist", POLICY,
        ('super().__init__("policy"', '"~/cmd_vel" if action.type == TWIST'),
        (("params/policy.yaml", "contract: params/robots/tabletop_sim.yaml"),
         ("params/robots/tabletop_sim.yaml", "type: geometry_msgs/msg/Twist"))),
    "/policy/status": Publisher(
        "policy", "vla_interfaces/PolicyStatus", POLICY, ('super().__init__("policy"', 'lp(PolicyStatus, "~/status"')),
    "/instruction/embedding": Publisher(
        "language", "vla_interfaces/InstructionEmbedding", LANGUAGE,
        ('lp(InstructionEmbedding, "instruction/embedding"',)),
    "/lifecycle_manager/status": Publisher(
        "lifecycle_manager", "vla_interfaces/ManagerStatus", MANAGER,
        ('super().__init__("lifecycle_manager"', 'create_publisher(ManagerStatus, "~/status"')),
    "/diagnostics": Publisher(
        "safety_shield", "diagnostic_msgs/DiagnosticArray", SHIELD, ('lp(DiagnosticArray, "/diagnostics"',)),
}

RVIZ_TYPES = {"rviz_default_plugins/Image": "sensor_msgs/Image",
              "rviz_default_plugins/MarkerArray": "visualization_msgs/MarkerArray"}


def message_class(msg: str):
    package, name = msg.split("/")
    return getattr(import_module(f"{package}.msg"), name)


def absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


# ---- what the configs reference ---------------------------------------------------------------------
def rviz_references() -> list[tuple[str, str | None, str]]:
    """(topic, required message type or None, field path '') of every display topic in the .rviz file."""
    config = yaml.safe_load(RVIZ.read_text())
    found = []

    def walk(displays):
        for display in displays:
            if "Displays" in display:  # rviz_common/Group
                walk(display["Displays"])
            topic = display.get("Topic")
            if isinstance(topic, dict) and topic.get("Value"):
                cls = display["Class"]
                assert cls in RVIZ_TYPES, f"display class {cls} has no type in RVIZ_TYPES; add it"
                found.append((absolute(topic["Value"]), RVIZ_TYPES[cls], ""))
    walk(config["Visualization Manager"]["Displays"])
    return found


def split_path(message_path: str) -> tuple[str, str]:
    """Foxglove message path '/topic.field.sub' -> ('/topic', 'field.sub') (topic names hold no '.')."""
    m = re.match(r"^(/[^.\[{]*)\.?(.*)$", message_path)
    assert m, f"not a message path: {message_path!r}"
    return m.group(1), m.group(2)


def foxglove_references() -> list[tuple[str, str | None, str]]:
    layout = json.loads(FOXGLOVE.read_text())
    found = []
    for panel, cfg in layout["configById"].items():
        kind = panel.split("!")[0]
        if kind == "Image":
            found += [(absolute(cfg["imageMode"][key]), "sensor_msgs/Image" if key == "imageTopic" else None, "")
                      for key in ("imageTopic", "calibrationTopic") if cfg["imageMode"].get(key)]
        elif kind == "Plot":
            found += [(*_topic_and_field(p["value"]),) for p in cfg["paths"]]
        elif kind == "RawMessages":
            found.append(_topic_and_field(cfg["topicPath"]))
        elif kind in ("DiagnosticSummary", "DiagnosticStatusPanel"):
            found.append((absolute(cfg["topicToRender"]), "diagnostic_msgs/DiagnosticArray", ""))
        elif kind == "3D":
            found += [(absolute(t), "visualization_msgs/MarkerArray", "") for t in cfg.get("topics", {})]
        elif kind != "Tab":
            raise AssertionError(f"panel {panel}: teach foxglove_references which topics a {kind} panel uses")
    return found


def _topic_and_field(message_path: str) -> tuple[str, None, str]:
    topic, field = split_path(message_path)
    return topic, None, field


CONFIGS = {"rviz": rviz_references, "foxglove": foxglove_references}


# ---- the checks ----------------------------------------------------------------------------------------
def test_configs_parse_and_show_the_essentials():
    rviz = yaml.safe_load(RVIZ.read_text())["Visualization Manager"]
    assert rviz["Global Options"]["Fixed Frame"] == "base_link"
    rviz_topics = {t for t, _, _ in rviz_references()}
    assert {"/camera/top/image_raw", "/perception/overlay", "/safety_shield/markers"} <= rviz_topics
    fox = foxglove_references()
    fox_paths = {(t, f) for t, _, f in fox}
    for field in ("linear.x", "linear.y"):
        assert {("/policy/cmd_vel", field), ("/cmd_vel", field)} <= fox_paths
    assert {"/policy/status", "/safety_shield/state", "/diagnostics", "/camera/top/image_raw"} <= {t for t, _, _ in fox}
    layout = json.loads(FOXGLOVE.read_text())
    panels = set(layout["configById"])
    assert any(p.startswith("DiagnosticSummary!") for p in panels)
    assert layout["layout"] in panels


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_referenced_topic_is_published_with_that_type(config):
    for topic, required_type, field in CONFIGS[config]():
        assert topic in TOPICS, f"{config} shows {topic}, which no node of the workspace publishes (or TOPICS lacks)"
        pub = TOPICS[topic]
        if required_type is not None:
            assert pub.msg == required_type, f"{config} shows {topic} as {required_type}; it carries {pub.msg}"
        if field:
            value = message_class(pub.msg)()
            for name in field.split("."):
                assert hasattr(value, name), f"{config}: {pub.msg} has no field {field!r} ({topic}.{field})"
                value = getattr(value, name)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_publisher_source_still_makes_the_topic(topic):
    pub = TOPICS[topic]
    source = (WS / pub.file).read_text()
    for fragment in pub.code:
        assert fragment in source, f"{topic}: {pub.file} no longer contains {fragment!r}; update the configs"
    for params_file, fragment in pub.params:
        assert fragment in (WS / params_file).read_text(), f"{topic}: {params_file} no longer has {fragment!r}"
    message_class(pub.msg)  # the type exists (vla_interfaces built)


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_sim_profile_runs_the_publisher_unmoved(topic):
    pub = TOPICS[topic]
    profile = yaml.safe_load(PROFILE.read_text())
    if pub.node == profile["manager"]["name"]:
        return
    nodes = {n["name"]: n for n in profile["nodes"]}
    assert pub.node in nodes, f"{topic}: the sim profile runs no node named {pub.node}; it has {sorted(nodes)}"
    node = nodes[pub.node]
    assert not node.get("namespace"), f"{topic}: {pub.node} runs in namespace {node['namespace']}"
    remapped = [src for src in (node.get("remap") or {}) if absolute(src) == topic or src == topic.lstrip("/")]
    assert not remapped, f"{topic}: the sim profile remaps it on {pub.node}"


def test_monitoring_doc_names_every_shown_topic():
    doc = MONITORING_DOC.read_text()
    shown = {t for refs in CONFIGS.values() for t, _, _ in refs()}
    missing = sorted(t for t in shown if f"`{t}`" not in doc)
    assert not missing, f"docs/monitoring.md does not document {missing}"


def node_sources() -> dict[str, Path]:
    """Node name -> its source, for every node of the workspace (src/<pkg>/<pkg>/*_node.py)."""
    found = {}
    for path in sorted(WS.glob("src/*/*/*_node.py")):
        m = re.search(r'super\(\).__init__\("(\w+)"', path.read_text())
        if m:
            found[m.group(1)] = path
    return found


def status_prefixes(source: str, node: str) -> set[str]:
    """The analyzer prefixes that match the /diagnostics statuses a node's source names."""
    forms = {f"{node}:": 'name=f"{self.get_name()}: ', f"/{node}": "name=self.get_fully_qualified_name()"}
    return {prefix for prefix, code in forms.items() if code in source}


def test_diagnostic_aggregator_groups_every_node_that_reports():
    """Each analyzer prefix matches statuses a node publishes, and every node that publishes /diagnostics has an
    analyzer, so that rqt_robot_monitor shows them all."""
    analyzers = yaml.safe_load(AGGREGATOR.read_text())["analyzers"]["ros__parameters"]
    prefixes = {p for a in analyzers.values() if isinstance(a, dict) for p in a.get("startswith", [])}
    reporting = {}
    for node, path in node_sources().items():
        source = path.read_text()
        if '"/diagnostics"' in source and "DiagnosticArray" in source:
            reporting[node] = status_prefixes(source, node)
    assert {"sim_robot", "safety_shield", "perception", "language", "lifecycle_manager"} <= set(reporting)
    for node, matching in reporting.items():
        assert matching, f"{node} names its statuses neither '<node>: ...' nor by its fully qualified name"
        assert matching & prefixes, f"no analyzer in {AGGREGATOR.name} matches {node}'s statuses ({sorted(matching)})"
    for prefix in prefixes:
        node = prefix.strip("/").rstrip(":")
        assert node in reporting, f"analyzer prefix {prefix!r} names no node that publishes /diagnostics"
