"""``make serve ENV=...`` (``python -m generator serve-env``): the settings that pin what an environment
serves, read from its release files: the rolling pin, the active blue-green slot, the stable canary
track; refusals name the environments."""

from __future__ import annotations

import pytest
from release_support import DIGEST_A, Repo, git


def pin(repo: Repo, env: str, config_map: str, version: str, digest: str) -> None:
    path = repo.root / f"overlays/{env}/release.yaml"
    docs = path.read_text().split("\n---\n")
    index = next(i for i, d in enumerate(docs) if f"name: {config_map}\n" in d)
    lines = docs[index].splitlines(keepends=True)
    docs[index] = "".join(
        f'  MODEL_VERSION: "{version}"\n'
        if line.startswith("  MODEL_VERSION:")
        else f'  MODEL_DIGEST: "{digest}"\n'
        if line.startswith("  MODEL_DIGEST:")
        else line
        for line in lines
    )
    path.write_text("\n---\n".join(docs))
    git(repo.root, "commit", "-q", "-a", "-m", f"pin {env}")


@pytest.mark.parametrize(
    "env, config_map",
    [("prod", "mnist-release"), ("prod-blue-green", "mnist-release-blue"), ("prod-canary", "mnist-release-stable")],
)
def test_the_live_release_is_what_make_serve_pins(repo: Repo, env: str, config_map: str):
    pin(repo, env, config_map, "7", DIGEST_A)
    result = repo.run("serve-env", "--env", env)
    assert (result.code, result.out) == (0, f"MODEL_VERSION=7 MODEL_DIGEST={DIGEST_A}\n"), result.err
    assert result.err.startswith(f"serve-env: {env}")


def test_the_other_variant_is_not_what_is_served(repo: Repo):
    pin(repo, "prod-canary", "mnist-release-canary", "9", DIGEST_A)
    result = repo.run("serve-env", "--env", "prod-canary")
    assert result.code == 0 and result.out.startswith("MODEL_VERSION=") and "MODEL_VERSION=9" not in result.out


@pytest.mark.parametrize(
    "args, says",
    [([], "name the environment: ENV= one of dev, staging"), (["--env", "qa"], "unknown environment 'qa'")],
)
def test_a_missing_or_unknown_environment_is_refused_naming_them(repo: Repo, args, says):
    result = repo.run("serve-env", *args)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("serve-env: refused: ") and says in result.err
