"""The version ``make train`` publishes next: one past the highest of the model store and the registry.

A version number that has a card is never trained again: its card pins the digest of other
bytes, and a retraining is never byte-identical. Standard library only, so ``make train`` needs
no generator dependencies: ``python -m generator.registry.next_version <model root> <model>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from generator.conventions import REGISTRY_DIR
from generator.paths import REPO_ROOT


def is_version_name(name: str) -> bool:
    """Whether ``name`` is a version number as the store and the registry write it (``7``, not ``007``)."""
    return name.isascii() and name.isdigit() and not name.startswith("0")


def _numbers(names: list[str]) -> list[int]:
    return [int(n) for n in names if is_version_name(n)]


def next_version(model_root: Path, model: str, repo_root: Path = REPO_ROOT) -> int:
    """One more than the highest published (``<model_root>/<model>/<n>/``) or registered
    (``registry/<model>/<n>.yaml``) version of ``model``; 1 when there is neither."""
    store = model_root / model
    published = _numbers([p.name for p in store.iterdir() if p.is_dir()]) if store.is_dir() else []
    cards = repo_root / REGISTRY_DIR / model
    registered = _numbers([p.stem for p in cards.glob("*.yaml")]) if cards.is_dir() else []
    return max([0, *published, *registered]) + 1


if __name__ == "__main__":
    print(next_version(Path(sys.argv[1]), sys.argv[2]))
