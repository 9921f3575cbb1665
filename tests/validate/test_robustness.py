"""No input crashes the checks: any field of the clean overlay replaced by any JSON value gives
findings (or none), never an exception. A crash would surface as exit 2 instead of a finding."""

from __future__ import annotations

import copy
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validate_support import check_docs, clean_docs

DOCS = clean_docs()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


PATHS = [(i, p) for i, doc in enumerate(DOCS) for p in _paths(doc) if p]
# Fixed examples by default (a stable make test); ROBUSTNESS_EXAMPLES=5000 explores at random.
EXAMPLES = os.environ.get("ROBUSTNESS_EXAMPLES")


@settings(
    max_examples=int(EXAMPLES or 300),
    derandomize=EXAMPLES is None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(target=st.sampled_from(PATHS), value=json_values)
def test_any_field_with_any_value_never_crashes(target, value):
    index, path = target
    docs = copy.deepcopy(DOCS)
    node = docs[index]
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    check_docs(docs)
