"""Language instructions for the arm task: two skills, templates, paraphrases and a parser.

The task of :class:`vla_sim.envs.arm.ArmPickPlaceEnv` is decided by the instruction:

* ``place``: "put the <cube colour> cube in the <bin colour> bin" (pick and place);
* ``stack``: "stack the <cube colour> cube on the <cube colour> cube".

Cube colours and bin colours come from two disjoint vocabularies (the tabletop
task's block and zone colours), so the skill follows from the colour words
alone: one cube colour and one bin colour is ``place``; two cube colours (and
no bin colour) is ``stack``. In a stack instruction the cube named first is
the one to move, unless a word saying "below" (under, beneath, below,
underneath, bottom) stands between the two colour words: "the blue cube should
end up under the red cube" moves the red cube onto the blue one.

Each skill has ten ``"train"`` templates (used to collect demonstrations) and
five ``"heldout"`` ones (never seen during training); ``"all"`` is their union.

Pure Python; no numpy, gymnasium or ROS dependency.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Sequence

from vla_sim.envs.instructions import (
    BLOCK_COLOURS as CUBE_COLOURS,
    COLOUR_SYNONYMS,
    INSTRUCTION_SETS,
    ZONE_COLOURS as BIN_COLOURS,
)

#: Skills, in id order (index = skill id in the privileged state).
SKILLS: tuple[str, ...] = ("place", "stack")

#: Words that, between two cube colours, mean the first is the lower one.
BELOW_WORDS = frozenset({"under", "beneath", "below", "underneath", "bottom"})

#: Placeholders: ``{cube}`` = cube colour word, ``{bin}`` = bin colour word.
PLACE_TRAIN_TEMPLATES: tuple[str, ...] = (
    "put the {cube} cube in the {bin} bin",
    "place the {cube} block into the {bin} bowl",
    "pick up the {cube} cube and drop it in the {bin} bin",
    "move the {cube} cube to the {bin} bowl",
    "put the {cube} block inside the {bin} container",
    "can you put the {cube} cube in the {bin} bin?",
    "drop the {cube} block into the {bin} bowl",
    "pick the {cube} cube and place it in the {bin} tray",
    "the {cube} cube goes in the {bin} bin",
    "transfer the {cube} block to the {bin} container",
)
PLACE_HELDOUT_TEMPLATES: tuple[str, ...] = (
    "please lift the {cube} box and set it down in the {bin} basket",
    "I want the {cube} cube sitting inside the {bin} bowl",
    "{bin} bin: put the {cube} block there",
    "could you grab the {cube} piece and leave it in the {bin} container?",
    "deposit the {cube} cube into the {bin} tray",
)

#: Placeholders: ``{top}`` = the cube to move, ``{base}`` = the cube to stack it on.
STACK_TRAIN_TEMPLATES: tuple[str, ...] = (
    "stack the {top} cube on the {base} cube",
    "put the {top} block on top of the {base} block",
    "place the {top} cube onto the {base} cube",
    "stack the {top} block on the {base} one",
    "pick up the {top} cube and put it on the {base} cube",
    "can you stack the {top} cube on top of the {base} cube?",
    "set the {top} block on the {base} block",
    "the {top} cube goes on top of the {base} cube",
    "move the {top} cube onto the {base} block",
    "build a tower with the {top} cube on the {base} cube",
)
STACK_HELDOUT_TEMPLATES: tuple[str, ...] = (
    "please balance the {top} box on the {base} box",
    "I want the {top} cube sitting on top of the {base} cube",
    "the {base} cube should end up under the {top} cube",
    "could you grab the {top} piece and leave it resting on the {base} piece?",
    "{base} cube at the bottom, {top} cube above it",
)

_TEMPLATES = {
    ("place", "train"): PLACE_TRAIN_TEMPLATES,
    ("place", "heldout"): PLACE_HELDOUT_TEMPLATES,
    ("stack", "train"): STACK_TRAIN_TEMPLATES,
    ("stack", "heldout"): STACK_HELDOUT_TEMPLATES,
}

_WORD_RE = re.compile(r"[a-z]+")


class ArmTask(NamedTuple):
    """What an instruction asks for."""

    skill: str   # "place" or "stack"
    cube: str    # colour of the cube to move
    target: str  # bin colour (place) or colour of the cube to stack on (stack)


def arm_templates(skill: str, instruction_set: str = "train") -> tuple[str, ...]:
    """Templates of one skill and set (``"train"``, ``"heldout"`` or ``"all"``).

    Raises:
        ValueError: unknown skill or set name.
    """
    if skill not in SKILLS:
        raise ValueError(f"unknown skill {skill!r}; expected one of {SKILLS}")
    if instruction_set == "all":
        return _TEMPLATES[(skill, "train")] + _TEMPLATES[(skill, "heldout")]
    if instruction_set not in INSTRUCTION_SETS:
        raise ValueError(
            f"unknown instruction_set {instruction_set!r}; expected one of {INSTRUCTION_SETS}"
        )
    return _TEMPLATES[(skill, instruction_set)]


def format_arm_instruction(template: str, task: ArmTask) -> str:
    """Fill one template of ``task.skill`` with the task's colours.

    Raises:
        ValueError: a colour outside the skill's vocabulary, or stacking a cube on itself.
    """
    if task.skill not in SKILLS:
        raise ValueError(f"unknown skill {task.skill!r}; expected one of {SKILLS}")
    if task.cube not in CUBE_COLOURS:
        raise ValueError(f"unknown cube colour {task.cube!r}; known: {CUBE_COLOURS}")
    if task.skill == "place":
        if task.target not in BIN_COLOURS:
            raise ValueError(f"unknown bin colour {task.target!r}; known: {BIN_COLOURS}")
        return template.format(cube=task.cube, bin=task.target)
    if task.target not in CUBE_COLOURS or task.target == task.cube:
        raise ValueError(
            f"cannot stack the {task.cube} cube on {task.target!r}: the base must be another "
            f"cube colour of {CUBE_COLOURS}"
        )
    return template.format(top=task.cube, base=task.target)


def parse_arm_instruction(
    text: str,
    cube_colours: Sequence[str] = CUBE_COLOURS,
    bin_colours: Sequence[str] = BIN_COLOURS,
) -> ArmTask:
    """Map an instruction in any phrasing to its :class:`ArmTask` (see the module docstring).

    Matching is case-insensitive, by whole colour words (COLOUR_SYNONYMS accepted).

    Raises:
        ValueError: naming the text, what was found and what is needed, when the
            text is not a string or names neither one cube and one bin colour nor
            two cube colours and no bin colour.
    """
    known = f"known cube colours {tuple(cube_colours)}, bin colours {tuple(bin_colours)}"
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a string, got {text!r}; {known}")
    words = [COLOUR_SYNONYMS.get(w, w) for w in _WORD_RE.findall(text.lower())]
    cubes: list[tuple[int, str]] = []  # (word index, colour) of first mentions
    bins: list[str] = []
    for i, word in enumerate(words):
        if word in cube_colours and word not in (c for _, c in cubes):
            cubes.append((i, word))
        elif word in bin_colours and word not in bins:
            bins.append(word)
    if len(cubes) == 1 and len(bins) == 1:
        return ArmTask("place", cubes[0][1], bins[0])
    if len(cubes) == 2 and not bins:
        (i0, first), (i1, second) = cubes
        if BELOW_WORDS.intersection(words[i0 + 1:i1]):
            return ArmTask("stack", second, first)
        return ArmTask("stack", first, second)
    raise ValueError(
        f"cannot parse instruction {text!r}: need one cube colour and one bin colour (place) or "
        f"two cube colours and no bin colour (stack); found cubes {[c for _, c in cubes]} and "
        f"bins {bins}; {known}"
    )


__all__ = [
    "ArmTask",
    "BELOW_WORDS",
    "BIN_COLOURS",
    "CUBE_COLOURS",
    "PLACE_HELDOUT_TEMPLATES",
    "PLACE_TRAIN_TEMPLATES",
    "SKILLS",
    "STACK_HELDOUT_TEMPLATES",
    "STACK_TRAIN_TEMPLATES",
    "arm_templates",
    "format_arm_instruction",
    "parse_arm_instruction",
]
