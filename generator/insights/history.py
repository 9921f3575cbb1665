"""The deployments of every environment, from ``git log --first-parent`` alone (no checkout).

A **deployment** is a first-parent commit that changes an environment's release state
(``state.py``); the commit that creates an overlay is its first. Each deployment carries the
commits that reached the branch since the environment's previous deployment (merged branches
included), which is what lead times are measured on. Trailers, where a commit has them, name the
action (``Release-Action``) and what a revert undoes (``Reverts:``); they never make or hide a
deployment: the state diff decides, so hand edits and older history count the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from generator.config import Environment, Platform
from generator.conventions import card_path
from generator.insights.gitlog import CatFile, Commit, ancestry, first_parent_chain
from generator.insights.state import ReleaseState, files_for, parse_documents, read_state
from generator.release.trailers import KEYS
from generator.strategy import Strategy

#: The trailers a release command writes (generator.release.trailers), and a revert's: each
#: deployment row carries those present.
TRAILERS = (*KEYS, "Reverts")


@dataclass(frozen=True)
class Deployment:
    """One first-parent commit that changed one environment's release state."""

    env: str
    index: int  # 0 for the environment's first deployment in the walked history
    commit: Commit
    before: ReleaseState | None
    after: ReleaseState
    carried: tuple[str, ...]  # commits that reached the branch since the previous deployment

    @property
    def time(self) -> int:
        """When it reached the branch: the first-parent commit's committer time."""
        return self.commit.commit_time

    @property
    def traffic_only(self) -> bool:
        """Whether it moved traffic (weights, active slot) and pinned nothing new."""
        return self.before is not None and self.before.pins() == self.after.pins()

    @property
    def action(self) -> str:
        """The ``Release-Action`` trailer, else what the diff says it was."""
        named = self.commit.trailer("Release-Action")
        if named:
            return named[0]
        if self.before is None:
            return "create"
        return "traffic" if self.traffic_only else "release"


@dataclass
class History:
    """Every environment's deployments, the commit graph, and the model cards they pinned."""

    environments: dict[str, Strategy]
    deployments: dict[str, list[Deployment]]
    commits: dict[str, Commit]  # first-parent commits by id
    author_times: dict[str, int]  # every reachable commit's author time
    #: (model, version, pinned digest) -> the card as committed where that pin first deployed
    cards: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def card_created(self, model: str, version: str, digest: str) -> int | None:
        """The Unix time a model card says its version was created, or None without a card."""
        created = (self.cards.get((model, version, digest)) or {}).get("created")
        if not isinstance(created, str):
            return None
        try:
            return int(datetime.fromisoformat(created).timestamp())
        except ValueError:
            return None

    def card_accuracy(self, model: str, version: str, digest: str) -> float | None:
        """The held-out accuracy a model card records, or None."""
        value = ((self.cards.get((model, version, digest)) or {}).get("metrics") or {}).get("holdoutAccuracy")
        return float(value) if isinstance(value, int | float) else None


def _new_commits(chain: list[Commit], graph: dict[str, tuple[tuple[str, ...], int]]) -> dict[str, list[str]]:
    """For each first-parent commit, the commits it brought to the branch (itself and what it merged)."""
    seen: set[str] = set()
    new: dict[str, list[str]] = {}
    for commit in chain:
        stack, found = [commit.sha], []
        while stack:
            sha = stack.pop()
            if sha in seen or sha not in graph:
                continue
            seen.add(sha)
            found.append(sha)
            stack.extend(graph[sha][0])
        new[commit.sha] = sorted(found)
    return new


def env_state(
    cat: CatFile, parsed: dict[str, list[Any]], sha: str, env: Environment, platform: Platform
) -> ReleaseState | None:
    """An environment's release state at commit ``sha`` (None: no overlay there); ``parsed``
    caches each blob's documents by object id."""
    files = {}
    for name in files_for(env.strategy):
        found = cat.read(sha, f"{env.overlay}/{name}")
        if found is not None:
            oid, data = found
            if oid not in parsed:
                parsed[oid] = parse_documents(data)
            files[name] = parsed[oid]
    models = tuple(m.name for m in platform.models)
    return read_state(
        files, env.strategy, models, platform.images.server.repository, platform.model_artifacts.repository
    )


def walk(
    root: Path, platform: Platform, rev: str = "HEAD", until: int | None = None, only: str | None = None
) -> History:
    """Read every environment's deployments on the first-parent chain of ``rev`` up to ``until``
    (Unix seconds, committer time; None: all), for the environments ``platform`` declares (or the
    one named ``only``)."""
    environments = [e for e in platform.environments if only is None or e.name == only]
    chain = [c for c in first_parent_chain(root, rev) if until is None or c.commit_time <= until]
    graph = ancestry(root, rev)
    new = _new_commits(chain, graph)
    history = History(
        environments={e.name: e.strategy for e in environments},
        deployments={e.name: [] for e in environments},
        commits={c.sha: c for c in chain},
        author_times={sha: author for sha, (_, author) in graph.items()},
    )
    parsed: dict[str, list[Any]] = {}
    with CatFile(root) as cat:
        for env in environments:
            before: ReleaseState | None = None
            pending: list[str] = []
            for commit in chain:
                pending.extend(new[commit.sha])
                state = env_state(cat, parsed, commit.sha, env, platform)
                if state is None or state == before:
                    continue
                found = history.deployments[env.name]
                found.append(Deployment(env.name, len(found), commit, before, state, tuple(sorted(pending))))
                before, pending = state, []
                for variant in state.variants:
                    for pin in variant.models:
                        key = (pin.model, pin.version or "", pin.digest or "")
                        if pin.version and key not in history.cards:
                            card = cat.read(commit.sha, card_path(pin.model, pin.version))
                            docs = parse_documents(card[1]) if card else []
                            if docs and isinstance(docs[0], dict):
                                history.cards[key] = docs[0]
    return history
