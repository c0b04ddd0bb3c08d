"""Language instructions for the tabletop push task: templates, paraphrases and a parser.

The task of :class:`vla_sim.envs.tabletop.TabletopPushEnv` is decided by the
instruction: "push the <block colour> block into the <zone colour> zone".
Block colours and zone colours come from two *disjoint* vocabularies, so any
phrasing can be mapped back to ``(block_colour, zone_colour)`` by looking for
colour words alone, independent of word order or sentence structure.

Two template sets exist so that language generalisation can be evaluated:
``"train"`` (used to collect demonstrations) and ``"heldout"`` (phrasings never
seen during training). ``"all"`` is their union. The sets share no template.

Pure Python; no numpy, gymnasium or ROS dependency.
"""

from __future__ import annotations

import re
from typing import Sequence

#: Colours a block can have, in palette order (index = colour id in the privileged state).
BLOCK_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
#: Colours a goal zone can have, in palette order (index = colour id in the privileged state).
#: Disjoint from BLOCK_COLOURS so the parser never confuses a block with a zone.
ZONE_COLOURS: tuple[str, ...] = ("purple", "orange", "teal")

#: Extra words accepted by the parser (never produced by the templates).
COLOUR_SYNONYMS: dict[str, str] = {
    "violet": "purple",
    "cyan": "teal",
    "turquoise": "teal",
}

INSTRUCTION_SETS: tuple[str, ...] = ("train", "heldout", "all")

#: Placeholders: ``{block}`` = block colour word, ``{zone}`` = zone colour word.
TRAIN_TEMPLATES: tuple[str, ...] = (
    "push the {block} block into the {zone} zone",
    "move the {block} block to the {zone} zone",
    "slide the {block} cube onto the {zone} square",
    "put the {block} block in the {zone} area",
    "push the {block} cube to the {zone} target",
    "can you push the {block} block into the {zone} area?",
    "get the {block} block into the {zone} zone",
    "the {block} block goes in the {zone} zone",
    "bring the {block} cube over to the {zone} region",
    "shove the {block} block onto the {zone} pad",
)

HELDOUT_TEMPLATES: tuple[str, ...] = (
    "please nudge the {block} box over to the {zone} patch",
    "I want the {block} block sitting inside the {zone} zone",
    "{zone} zone: deliver the {block} cube there",
    "relocate the {block} block so that it ends up on the {zone} square",
    "could you guide the {block} piece toward the {zone} marker and leave it there?",
)

_WORD_RE = re.compile(r"[a-z]+")


def templates(instruction_set: str = "train") -> tuple[str, ...]:
    """Templates of one set: ``"train"``, ``"heldout"`` or ``"all"`` (train then heldout).

    Raises:
        ValueError: unknown set name.
    """
    if instruction_set == "train":
        return TRAIN_TEMPLATES
    if instruction_set == "heldout":
        return HELDOUT_TEMPLATES
    if instruction_set == "all":
        return TRAIN_TEMPLATES + HELDOUT_TEMPLATES
    raise ValueError(
        f"unknown instruction_set {instruction_set!r}; expected one of {INSTRUCTION_SETS}"
    )


def format_instruction(template: str, block: str, zone: str) -> str:
    """Fill one template with a block colour and a zone colour.

    Raises:
        ValueError: a colour is not in BLOCK_COLOURS / ZONE_COLOURS.
    """
    if block not in BLOCK_COLOURS:
        raise ValueError(f"unknown block colour {block!r}; known: {BLOCK_COLOURS}")
    if zone not in ZONE_COLOURS:
        raise ValueError(f"unknown zone colour {zone!r}; known: {ZONE_COLOURS}")
    return template.format(block=block, zone=zone)


def parse_instruction(
    text: str,
    block_colours: Sequence[str] = BLOCK_COLOURS,
    zone_colours: Sequence[str] = ZONE_COLOURS,
) -> tuple[str, str]:
    """Map an instruction in any phrasing to ``(block_colour, zone_colour)``.

    Matching is case-insensitive and by whole colour words (synonyms in
    COLOUR_SYNONYMS are accepted); the text must name exactly one block colour
    and exactly one zone colour (each may be repeated).

    Args:
        text: the instruction, e.g. "Slide the RED cube onto the purple square".
        block_colours / zone_colours: the colour vocabularies to accept.

    Returns:
        (block_colour, zone_colour), canonical lower-case colour names.

    Raises:
        ValueError: naming the text and the known colours, when the text is not
            a string or does not name exactly one block and one zone colour.
    """
    known = f"known block colours {tuple(block_colours)}, zone colours {tuple(zone_colours)}"
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a string, got {text!r}; {known}")
    blocks: list[str] = []
    zones: list[str] = []
    for word in _WORD_RE.findall(text.lower()):
        word = COLOUR_SYNONYMS.get(word, word)
        if word in block_colours and word not in blocks:
            blocks.append(word)
        elif word in zone_colours and word not in zones:
            zones.append(word)
    if len(blocks) != 1 or len(zones) != 1:
        raise ValueError(
            f"cannot parse instruction {text!r}: need exactly one block colour and one zone "
            f"colour, found blocks {blocks} and zones {zones}; {known}"
        )
    return blocks[0], zones[0]
