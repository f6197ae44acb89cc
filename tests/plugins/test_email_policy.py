"""The compat32 policy with a fast path: byte for byte what compat32 writes."""

from __future__ import annotations

import email.errors
import email.policy

import pytest
from fulfil.plugins.notifiers._email_policy import FAST_FOLD_COMPAT32, needs_no_folding
from hypothesis import example, given
from hypothesis import strategies as st

NAMES = ["To", "Subject", "Message-ID", "X-Fulfil-Dedupe-Key", "Content-Type"]
# Mostly printable ASCII (the fast path's domain), with the characters that must not take
# it: blanks, line separators, control and non-ASCII characters.
CHARACTERS = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.sampled_from(" \t\r\n\x0b\x0c\x1c\x1d\x1e\x00\x7féŁ\u2028=?"),
)


def folded(policy: email.policy.Compat32, method: str, name: str, value: str) -> object:
    try:
        return getattr(policy, method)(name, value)
    except email.errors.HeaderParseError as exc:  # e.g. a value embedding a header
        return type(exc)


@given(
    name=st.sampled_from(NAMES),
    value=st.text(CHARACTERS, max_size=120),
    max_line_length=st.sampled_from([78, 40, 0, None]),
)
@example(name="Subject", value="x" * 69, max_line_length=78)  # 78 characters: no fold
@example(name="Subject", value="x" * 70, max_line_length=78)  # 79: compat32's own way
@example(name="Subject", value="a trailing blank ", max_line_length=78)
@example(name="To", value=" a leading blank", max_line_length=78)
@example(name="To", value="inner  blanks\tand tab", max_line_length=78)
@example(name="To", value="", max_line_length=78)
def test_same_bytes_as_compat32(name: str, value: str, max_line_length: int | None) -> None:
    fast = FAST_FOLD_COMPAT32.clone(max_line_length=max_line_length)
    slow = email.policy.compat32.clone(max_line_length=max_line_length)
    for method in ("fold", "fold_binary"):
        assert folded(fast, method, name, value) == folded(slow, method, name, value)


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        ("<0123456789abcdef0123456789abcdef@example.org>", True),
        ('multipart/alternative; boundary="=_0123456789abcdef01234567"', True),
        ("x" * 69, True),
        ("x" * 70, False),  # "Subject: " + 70 = 79 characters
        ("Votre commande a été expédiée", False),
        ("two\nlines", False),
        ("trailing ", False),
        ("", False),
    ],
)
def test_which_values_take_the_fast_path(value: str, fast: bool) -> None:
    assert needs_no_folding("Subject", value) is fast


def test_the_policy_keeps_its_class_when_cloned() -> None:
    clone = FAST_FOLD_COMPAT32.clone(linesep="\r\n")
    assert type(clone) is type(FAST_FOLD_COMPAT32)
    assert clone.fold_binary("To", "a@example.org") == b"To: a@example.org\r\n"
