"""The workspace's layering (ARCHITECTURE.md, Packages): read every import of every package and every package.xml.

From the bottom: vla_interfaces, vla_core, vla_ros; the node packages above them (they may use each other where
their package.xml says so); vla_trainer and vla_bringup above the node packages (neither uses the other);
vla_tools on top. A package imports no package above it, and every workspace package it imports is declared in
its package.xml (<depend>/<exec_depend>; test files may also use <test_depend>).
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
NODE_PACKAGES = ("vla_sim", "vla_perception", "vla_language", "vla_policy", "vla_safety", "vla_recorder", "vla_teleop",
                 "vla_web")
LEVEL = {"vla_interfaces": 0, "vla_core": 1, "vla_ros": 2, **{p: 3 for p in NODE_PACKAGES},
         "vla_trainer": 4, "vla_bringup": 4, "vla_tools": 5}
# A dotted module path in a string is a module loaded at run time: `python -m vla_x.y`, an entry point.
MODULE_STRING = re.compile(r"(?:^|=\s*)(vla_\w+)(?:\.\w+)+(?::\w+)?$")


def packages() -> dict[str, Path]:
    return {xml.parent.name: xml for xml in sorted(SRC.glob("*/package.xml"))}


def declared(xml: Path, *tags: str) -> set[str]:
    return {e.text.strip() for e in ET.parse(xml).getroot() if e.tag in tags and e.text}


def imported(py: Path) -> dict[str, int]:
    """Top-level names of the modules a file imports (anywhere in it) or names as a module string -> first line."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(py.read_text(), str(py))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.search(node.value):
            names = [MODULE_STRING.search(node.value).group(1)]
        for name in names:
            found.setdefault(name.split(".")[0].split(":")[0], node.lineno)
    return found


def above(user: str, used: str) -> bool:
    """Whether ``used`` sits above ``user`` (or beside it, for the packages that must stay independent)."""
    if LEVEL[used] != LEVEL[user]:
        return LEVEL[used] > LEVEL[user]
    return used not in NODE_PACKAGES


def violations(src: Path = SRC) -> list[str]:
    pkgs = {xml.parent.name: xml for xml in sorted(src.glob("*/package.xml"))}
    out = []
    for name, xml in pkgs.items():
        run = declared(xml, "depend", "exec_depend", "build_export_depend")
        test = run | declared(xml, "test_depend")
        for dep in sorted((run | test) & set(pkgs)):
            if above(name, dep):
                out.append(f"{xml}: declares {dep}, a package above {name}")
        for py in sorted({*xml.parent.rglob("*.py"), *(xml.parent / "bin").glob("*")}):
            rel = py.relative_to(xml.parent)
            is_test = rel.parts[0] == "test"
            for used, line in sorted(imported(py).items()):
                if used == name or used not in pkgs:
                    continue
                if above(name, used):
                    out.append(f"{py}:{line}: {name} uses {used}, a package above it")
                elif used not in (test if is_test else run):
                    tag = "<test_depend>" if is_test else "<exec_depend>"
                    out.append(f"{py}:{line}: {name} uses {used}, which its package.xml does not declare "
                               f"(add {tag}{used}{tag.replace('<', '</')})")
    return out


def test_every_package_has_a_place_in_the_layering():
    unplaced = sorted(set(packages()) - set(LEVEL))
    assert not unplaced, f"packages with no layer: {unplaced}; add them to LEVEL here and to ARCHITECTURE.md"


def test_no_package_uses_one_above_it_and_every_use_is_declared():
    found = violations()
    assert not found, "the layering is broken:\n" + "\n".join(found)


def test_the_check_sees_an_undeclared_import_and_an_upward_one(tmp_path):
    def package(name: str, deps: tuple[str, ...], code: str) -> None:
        (tmp_path / name / name).mkdir(parents=True)
        (tmp_path / name / "package.xml").write_text(
            f"<package><name>{name}</name>" + "".join(f"<exec_depend>{d}</exec_depend>" for d in deps) + "</package>")
        (tmp_path / name / name / "mod.py").write_text(code)

    package("vla_core", (), "")
    package("vla_bringup", ("vla_core",), "")
    package("vla_sim", (), "def f():\n    from vla_core import x\n")
    package("vla_policy", ("vla_core", "vla_bringup"), "import subprocess\nsubprocess.run(['-m', 'vla_bringup.cli'])\n")
    found = "\n".join(violations(tmp_path))
    assert "vla_sim uses vla_core, which its package.xml does not declare" in found
    assert "declares vla_bringup, a package above vla_policy" in found
    assert "vla_policy uses vla_bringup, a package above it" in found


@pytest.mark.parametrize("user,used,expected", [
    ("vla_policy", "vla_core", False), ("vla_teleop", "vla_sim", False), ("vla_policy", "vla_trainer", True),
    ("vla_bringup", "vla_trainer", True), ("vla_trainer", "vla_bringup", True), ("vla_tools", "vla_bringup", False),
    ("vla_core", "vla_ros", True), ("vla_bringup", "vla_tools", True)])
def test_order(user, used, expected):
    assert above(user, used) is expected
