"""Hand-edited release files of the wrong shape: every release command refuses with one line per
problem naming the file and the field, exit 2, and changes nothing (the broken file is committed
first, as a hand edit would be)."""

from __future__ import annotations

import os
import re

import pytest
from release_support import Repo

BROKEN = {
    "empty kustomization": ("prod", "kustomization.yaml", "", "kustomization.yaml: (top level): must be one"),
    "kustomization is a list": ("dev", "kustomization.yaml", "- a\n- b\n", "kustomization.yaml: (top level): "),
    "images is a string": ("staging", "kustomization.yaml", None, "kustomization.yaml: images: 'nginx' is not"),
    "weight: lots": ("prod-canary", "traffic.yaml", None, "traffic.yaml: [0].spec.canary: 'lots' is not"),
    "MODEL_VERSION is a list": ("staging", "release.yaml", None, "release.yaml: [0].data.MODEL_VERSION: [1] is"),
    "digest with a newline": ("dev", "kustomization.yaml", None, "kustomization.yaml: images[0].digest: "),
}
EDITS = {
    "images is a string": lambda t: t.split("images:")[0] + "images: nginx\npatches:\n" + t.split("patches:\n")[1],
    "weight: lots": lambda t: t.replace("canary: 0", "canary: lots"),
    "MODEL_VERSION is a list": lambda t: t.replace('MODEL_VERSION: "1"', "MODEL_VERSION: [1]"),
    "digest with a newline": lambda t: re.sub(r"digest: (sha256:\w+)", r'digest: "\1\\n"', t, count=1),
}
COMMANDS = {
    "set-image": lambda env: ["--env", env, "--image", "server", "--tag", "9.9.9"],
    "promote": lambda env: ["--from", env, "--to", "prod" if env != "prod" else "staging"],
    "canary": lambda env: ["--env", env, "--weight", "25"],
    "switch": lambda env: ["--env", env],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_release_commands_refuse_a_broken_release_file(repo: Repo, case):
    env, name, content, says = BROKEN[case]
    path = repo.root / "overlays" / env / name
    path.write_text(content if content is not None else EDITS[case](path.read_text()))
    repo.commit(f"hand edit: {case}")
    before = repo.snapshot()
    for command, args in COMMANDS.items():
        if command in ("canary", "switch") and env not in ("prod-canary", "prod-blue-green"):
            continue  # the strategy refusal comes first for these
        result = repo.run(command, *args(env))
        assert result.code == 2, (command, result.err)
        lines = result.err.strip().splitlines()
        assert any(f"{command}: refused: overlays/{env}/{says}" in line for line in lines), (command, lines)
        assert "Traceback" not in result.err
        assert repo.snapshot() == before, f"{command} changed files"


def test_a_fifo_release_file_is_refused_without_hanging(repo: Repo):
    path = repo.root / "overlays/dev/release.yaml"
    path.unlink()
    os.mkfifo(path)
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--tag", "9.9.9", "--allow-dirty")
    assert result.code == 2
    assert "overlays/dev/release.yaml: not a regular file" in result.err


@pytest.mark.parametrize("tag", ["1.0\n", "1.0\x00", "latest", "-x", "a" * 129])
def test_set_image_refuses_a_bad_tag_argument(repo: Repo, tag):
    before = repo.snapshot()
    result = repo.run("set-image", "--env", "dev", "--image", "server", "--tag", tag)
    assert result.code == 2 and result.err.count("\n") == 1, result.err
    assert repo.snapshot() == before


@pytest.mark.parametrize("case", ["kustomization is a list", "MODEL_VERSION is a list"])
def test_status_names_a_broken_file_in_its_row_and_exits_3(repo: Repo, case):
    env, name, content, says = BROKEN[case]
    path = repo.root / "overlays" / env / name
    path.write_text(content if content is not None else EDITS[case](path.read_text()))
    before = repo.snapshot()
    result = repo.run("status")
    assert result.code == 3 and "Traceback" not in result.err, result.err
    rows = {line.split()[0]: line for line in result.out.splitlines() if line and not line.startswith(" ")}
    assert f"ERROR: overlays/{env}/{says}" in rows[env], rows[env]
    assert all("ERROR" not in line for name, line in rows.items() if name != env), "the other rows as usual"
    assert repo.snapshot() == before
