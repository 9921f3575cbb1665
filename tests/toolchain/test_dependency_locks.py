"""The dependency groups: each job installs only what it uses, every pin is exact and hashed,
and the groups agree on every package they share (so they can share one .venv)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generator.paths import REPO_ROOT

GROUPS = {
    "generator": REPO_ROOT / "requirements/generator.txt",
    "dev": REPO_ROOT / "requirements/dev.txt",
    "inference": REPO_ROOT / "services/inference/requirements.txt",
    "training": REPO_ROOT / "services/training/requirements.txt",
}
CONSTRAINTS = REPO_ROOT / "requirements/constraints.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.+!-]+)(?: \\)?$")


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """package -> (version, number of hashes) of a pip-compile lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = _key(match[1])
            pins[current] = (match[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
        elif line.strip() and not line.lstrip().startswith(("#", "--hash")):
            pytest.fail(f"{path.relative_to(REPO_ROOT)}: not a pinned requirement: {line!r}")
    return pins


def direct(path: Path) -> dict[str, str]:
    """package -> version of the direct dependencies in a group's .in file."""
    lines = (ln.split("#")[0].strip() for ln in path.with_suffix(".in").read_text().splitlines())
    pins = {}
    for line in filter(None, lines):
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.+!-]+)", line)
        assert match, f"{path.with_suffix('.in').relative_to(REPO_ROOT)}: not an exact pin: {line!r}"
        pins[_key(match[1])] = match[2]
    return pins


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_locked_package_is_exact_and_hashed(group):
    pins = locked(GROUPS[group])
    assert pins, f"{group}: empty lock"
    assert not [name for name, (_, hashes) in pins.items() if hashes == 0], f"{group}: packages without hashes"


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_lock_holds_every_direct_dependency_at_its_pinned_version(group):
    pins = locked(GROUPS[group])
    stale = {
        name: (version, pins.get(name, ("missing",))[0])
        for name, version in direct(GROUPS[group]).items()
        if pins.get(name, ("",))[0] != version
    }
    assert not stale, f"{group}: .in and lock disagree (run `make lock`): {stale}"


def test_groups_agree_on_every_shared_package():
    resolution = {name: version for name, (version, _) in locked(CONSTRAINTS).items()}
    for group, path in GROUPS.items():
        differ = {
            name: (version, resolution.get(name))
            for name, (version, _) in locked(path).items()
            if resolution.get(name) != version
        }
        assert not differ, f"{group}: differs from requirements/constraints.txt (run `make lock`): {differ}"


@pytest.mark.parametrize("group", ["generator", "inference"])
def test_generator_and_server_carry_no_tensorflow(group):
    heavy = {name for name in locked(GROUPS[group]) if name.startswith(("tensorflow", "keras", "torch"))}
    assert not heavy, f"{group} must not install {sorted(heavy)}"
