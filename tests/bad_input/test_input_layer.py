"""generator/inputs.py, the input layer every hand-edited file goes through: safe reading, strict
YAML, ECMA-262 patterns, no control characters, finite numbers."""

from __future__ import annotations

import math
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generator.inputs import (
    MAX_BYTES,
    MAX_DEPTH,
    InputError,
    ecma_pattern,
    load_yaml,
    load_yaml_stream,
    read_text,
    shown,
    strict_validator,
    value_problems,
)


def refused(fn, *args) -> list[str]:
    with pytest.raises(InputError) as caught:
        fn(*args)
    return caught.value.problems


def test_only_regular_utf8_files_of_bounded_size_are_read(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert refused(read_text, fifo, "fifo.yaml") == [
        "fifo.yaml: not a regular file (a FIFO, device or directory is never read)"
    ]
    assert refused(read_text, tmp_path, "dir")[0].startswith("dir: not a regular file")
    assert refused(read_text, tmp_path / "missing", "missing.yaml") == [
        "missing.yaml: cannot read: No such file or directory"
    ]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"a: 1\nb: caf\xe9\n")
    assert refused(read_text, latin, "latin.yaml") == ["latin.yaml: line 2: not UTF-8 (byte 0xe9 at offset 11)"]
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    assert "more than the" in refused(read_text, big, "big.yaml")[0]
    fine = tmp_path / "fine.yaml"
    fine.write_text("a: é\n")
    assert read_text(fine, "fine.yaml") == "a: é\n"


def test_yaml_duplicates_depth_and_syntax_are_one_line_each():
    assert refused(load_yaml, "a: 1\na: 2\n", "f.yaml") == [
        "f.yaml: line 2, column 1: duplicate key 'a' (first on line 1)"
    ]
    assert refused(load_yaml, "a: [" * 100_000, "f.yaml") == [f"f.yaml: nested more than {MAX_DEPTH} levels deep"]
    assert refused(load_yaml, "a:" + " {b:" * (MAX_DEPTH + 1) + " 1" + "}" * (MAX_DEPTH + 1), "f.yaml") == [
        f"f.yaml: nested more than {MAX_DEPTH} levels deep"
    ]
    assert refused(load_yaml, "a: [1, 2\n", "f.yaml")[0].startswith("f.yaml: line 2, column 1: ")
    assert refused(load_yaml, "a: 1\n---\nb: 2\n", "f.yaml") == ["f.yaml: holds 2 YAML documents; one is expected"]
    assert load_yaml_stream("a: 1\n---\n---\nb: 2\n", "f.yaml") == [{"a": 1}, {"b": 2}]


@given(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.sampled_from(["\n", "\r\n", "\x00", " ", "A"]))
def test_patterns_match_the_whole_string_as_ecma_and_re2_do(word, tail):
    validator = strict_validator({"type": "string", "pattern": "^[a-z]+$"})
    assert validator.is_valid(word)
    assert not validator.is_valid(word + tail)  # Python's own `$` would accept word + "\n"
    assert re.search("^[a-z]+$", word + "\n")  # ... which is the trap


@pytest.mark.parametrize(
    ("pattern", "python"),
    [
        ("^a$", r"^a\Z"),
        (r"^a\$$", r"^a\$\Z"),  # an escaped dollar is a literal
        ("^[$]+$", r"^[$]+\Z"),  # inside a class too
        ("^[]$]$", r"^[]$]\Z"),  # a leading ] is a class member
        ("^(a|b)$|^c$", r"^(a|b)\Z|^c\Z"),
    ],
)
def test_ecma_pattern_rewrites_only_the_end_anchor(pattern, python):
    assert ecma_pattern(pattern) == python


def test_integers_are_ints_never_floats():
    validator = strict_validator({"type": "integer", "maximum": 10})
    assert validator.is_valid(3)
    assert not validator.is_valid(3.0) and not validator.is_valid(True)


@pytest.mark.parametrize("control", ["\n", "\r", "\x00", "\x1b", "\x7f"])
def test_control_characters_are_refused_in_values_and_keys(control):
    data = {"name": f"dev{control}", f"key{control}": 1, "text": f"line one{control}line two"}
    problems = dict(value_problems(data, frozenset({"text"})))
    assert "name" in problems and "(top level)" in problems
    assert ("text" in problems) == (control != "\n")  # free text may hold newlines, nothing else


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(number):
    assert value_problems({"a": [1, {"b": number}]}) == [("a[1].b", f"{number} is not a number a setting can have")]


def test_messages_never_repeat_a_huge_value():
    assert len(shown("x" * 100_000)) < 100
