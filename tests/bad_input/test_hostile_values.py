"""Hostile values at every path of every hand-edited file: platform.yaml and each overlay's
release files. Each one is refused with lines naming the file and the path, never a traceback.

Values that are wrong for every field: strings with a control character (a trailing newline
included), NaN and infinities, integers beyond int64, floats where integers go, lists where
scalars go, and nesting deeper than the input layer allows. (``--hypothesis-profile=nightly``
explores more examples.)
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from generator.config import FREE_TEXT, ConfigError, load_config
from generator.inputs import CONTROL, MAX_DEPTH, dotted
from generator.paths import REPO_ROOT
from generator.release.files import FILES, read_release_file, release_file_problems
from generator.validate.render import NOT_ENVIRONMENTS

PLATFORM = yaml.safe_load((REPO_ROOT / "platform.yaml").read_text())


def deep(levels: int) -> dict:
    node: dict = {"x": 1}
    for _ in range(levels):
        node = {"x": node}
    return node


hostile = st.one_of(
    st.text(max_size=6).map(lambda s: s + "\n"),
    st.tuples(st.text(max_size=4), st.sampled_from("\x00\x01\x1b\r\x7f"), st.text(max_size=4)).map("".join),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=2**63, max_value=2**80),
    st.floats(min_value=1, max_value=1e30).map(lambda f: float(int(f))),
    st.lists(st.integers(0, 3), min_size=1, max_size=2),
    st.just(deep(MAX_DEPTH + 1)),
)


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a scalar (the places a person types a value)."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in leaf_paths(value, (*prefix, key))]
    if isinstance(node, list):
        return [p for index, value in enumerate(node) for p in leaf_paths(value, (*prefix, index))]
    return [prefix]


def at(doc: Any, path: tuple) -> Any:
    """The value at ``path``."""
    for part in path:
        doc = doc[part]
    return doc


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def names(problem_path: str, path: tuple) -> bool:
    """A problem at ``path`` or inside it, or at its parent for a list that became too long."""
    where = dotted(list(path))
    return problem_path == where or problem_path.startswith((where + ".", where + "["))


@given(path=st.sampled_from(leaf_paths(PLATFORM)), value=hostile)
def test_platform_yaml_refuses_a_hostile_value_at_any_path(tmp_path_factory, path, value):
    # A newline is text in the free-text fields; every other control character is refused there too.
    assume(
        not (dotted(list(path)) in FREE_TEXT and isinstance(value, str) and not CONTROL.search(value.replace("\n", "")))
    )
    # A whole float is hostile where an integer goes; a field of real numbers (a quality gate's
    # maxLoss) may hold one.
    assume(not (isinstance(value, float) and math.isfinite(value) and isinstance(at(PLATFORM, path), float)))
    target = tmp_path_factory.mktemp("platform") / "platform.yaml"
    target.write_text(yaml.safe_dump(replaced(PLATFORM, path, value), sort_keys=False, width=4096))
    with pytest.raises(ConfigError) as caught:
        load_config(target)
    lines = caught.value.problems
    assert lines and all(line.startswith("platform.yaml: ") for line in lines), lines
    if isinstance(value, dict):  # too deep: the whole file is refused
        assert lines == [f"platform.yaml: nested more than {MAX_DEPTH} levels deep"]
    else:
        assert any(names(line.split(": ", 2)[1], path) for line in lines), (dotted(list(path)), lines)
    assert all(len(line) < 400 for line in lines), "a message repeats a huge value"


RELEASE_DOCS = [
    (overlay.name, name, docs)
    for overlay in sorted((REPO_ROOT / "overlays").iterdir())
    if overlay.name not in NOT_ENVIRONMENTS
    for name in FILES
    if (overlay / name).exists()
    for docs in [read_release_file(overlay / name, name)]
]
RELEASE_PATHS = [
    (index, path)
    for index, (_, name, docs) in enumerate(RELEASE_DOCS)
    for path in leaf_paths(docs[0] if name == "kustomization.yaml" else docs)
    # paths kustomize owns, not the release schema (resources, components, patch file names)
    if not (name == "kustomization.yaml" and path[0] in ("resources", "components", "patches", "apiVersion", "kind"))
]


def test_every_committed_release_file_is_clean():
    for overlay, name, docs in RELEASE_DOCS:
        assert release_file_problems(name, docs) == [], f"overlays/{overlay}/{name}"


@given(target=st.sampled_from(RELEASE_PATHS), value=hostile)
def test_release_files_refuse_a_hostile_value_at_any_path(target, value):
    index, path = target
    overlay, name, docs = RELEASE_DOCS[index]
    if name == "kustomization.yaml":
        problems = release_file_problems(name, [replaced(docs[0], path, value)])
        where = dotted(list(path))
    else:
        problems = release_file_problems(name, replaced(docs, path, value))
        where = f"[{path[0]}]" + (f".{dotted(list(path[1:]))}" if len(path) > 1 else "")
    assert problems, f"overlays/{overlay}/{name}: {where} = {value!r} was accepted"
    if not isinstance(value, dict):
        assert any(p == where or p.startswith((where + ".", where + "[")) for p, _ in problems), (where, problems)
