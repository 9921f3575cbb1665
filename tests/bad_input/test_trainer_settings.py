"""The trainer's settings layer (flags and environment variables): a hostile value for any setting
ends in exit 2 with one short line naming the flag or variable, before TensorFlow is imported and
before anything is written; never a traceback."""

from __future__ import annotations

import contextlib
import io
import typing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.training import settings, train

FIELDS = settings.TrainSettings.model_fields
FLAGS = settings.flag_fields()


def _types(annotation: object) -> set[object]:
    """The plain types an annotation admits (``int | None`` -> {int, NoneType}; a Literal -> {str})."""
    if typing.get_origin(annotation) is typing.Literal:
        return {str}
    args = typing.get_args(annotation)
    return set().union(*map(_types, args)) if args else {annotation}


#: Settings given as text (paths, names, a level) and as numbers; TF_CONFIG (JSON) is tested apart.
TEXT = sorted(name for name in FLAGS if _types(FIELDS[name].annotation) & {str, Path})
NUMERIC = sorted(name for name in FLAGS if _types(FIELDS[name].annotation) & {int, float} - {bool})
control = st.tuples(st.text(max_size=4), st.sampled_from("\x00\n\r\x1b\x7f"), st.text(max_size=4)).map("".join)
not_a_bounded_number = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e30", "99999999999999999999", "-99999999999", "0x10", "1,5", "ten"]),
    st.integers(min_value=2**63, max_value=2**70).map(str),
)
huge = st.sampled_from(["a" * 100_000, "/" + "b" * 5_000, "/tmp/" + "c" * 300 + "/x"])


def refused(argv: list[str], env: dict[str, str]) -> str:
    """The one line ``parse_args`` exits 2 with (environment patched for this call only)."""
    err = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(err):
        for name, value in env.items():
            patch.setenv(name, value)
        with pytest.raises(SystemExit) as info:
            train.parse_args(argv)
    assert info.value.code == 2
    last = err.getvalue().strip().splitlines()[-1]
    assert len(last) < 400, last[:400]
    return last


def test_the_layer_covers_every_setting():
    switches = {name for name in FLAGS if FIELDS[name].annotation is bool}
    assert switches == {"skip_existing", "registry_plain_http"}
    assert set(TEXT) | set(NUMERIC) == set(FLAGS) - switches, "a setting is neither text nor a number"


@given(name=st.sampled_from(NUMERIC), value=not_a_bounded_number, as_flag=st.booleans())
def test_a_number_out_of_bounds_or_not_a_number_is_refused(name, value, as_flag):
    if as_flag:
        assert FLAGS[name] in refused([f"{FLAGS[name]}={value}"], {})
    else:
        assert f"{settings.env_name(name)}=" in refused([], {settings.env_name(name): value})


@given(name=st.sampled_from(TEXT), value=control, as_flag=st.booleans())
def test_a_control_character_in_a_text_setting_is_refused(name, value, as_flag):
    if as_flag or "\x00" in value:  # no environment variable can hold NUL
        assert FLAGS[name] in refused([f"{FLAGS[name]}={value}"], {})
    else:
        assert f"{settings.env_name(name)}=" in refused([], {settings.env_name(name): value})


@given(name=st.sampled_from(TEXT), value=huge)
def test_a_huge_value_is_refused_and_not_repeated(name, value):
    last = refused([FLAGS[name], value], {})
    assert FLAGS[name] in last and "characters)" in last
