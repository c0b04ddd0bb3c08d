"""The one text check every component applies to instructions (and other recorded text)."""
import pytest

from vla_core.text import InstructionError, check_text, invalid_character, normalize_instruction


@pytest.mark.parametrize("text, words", [
    ("push the red\x1b[2J cube", r"U\+001B \(a control character\)"),   # a terminal escape
    ("push \x7f the cube", r"U\+007F"),
    ("push \x85 the cube", r"U\+0085"),                                 # a C1 control
    ("push the \u202ered cube", r"U\+202E \(a bidirectional override\)"),
    ("push the cube \ufffe", r"U\+FFFE \(a Unicode non-character\)"),
    ("push the cube \r", None),                                          # stripped at the end: fine
    ("push the\r cube", r"U\+000D"),
])
def test_characters_that_make_text_untrainable_or_misleading_are_refused(text, words):
    if words is None:
        assert normalize_instruction(text) == text.strip()
    else:
        with pytest.raises(InstructionError, match=words):
            normalize_instruction(text)


def test_tab_newline_and_ordinary_unicode_are_text():
    assert normalize_instruction("push the\tred cube\nnow") == "push the\tred cube\nnow"
    assert normalize_instruction("schiebe den roten Würfel → lila 🟪") == "schiebe den roten Würfel → lila 🟪"
    assert invalid_character("é") == ""


def test_other_text_is_checked_under_its_own_name():
    assert check_text(" encoder/x ", "encoder id", 16) == "encoder/x"
    with pytest.raises(InstructionError, match="encoder id is 17 characters long"):
        check_text("x" * 17, "encoder id", 16)
    with pytest.raises(InstructionError, match="encoder id must be text"):
        check_text(3, "encoder id", 16)
