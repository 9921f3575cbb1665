"""Read and edit the hand-edited files of one environment overlay, keeping them readable.

Files are edited with ruamel.yaml in round-trip mode: comments, key order, quoting and the
2-space / indented-sequence layout of the overlays survive an edit, and an unchanged file
dumps byte-identical. What lives where (see docs/releases.md, "How a release is pinned"):

- ``kustomization.yaml`` ``images:``: the server image (rolling: entry named by the real
  repository; blue-green/canary: one entry per variant named ``<repo basename>-<variant>`` with
  ``newName:`` the real repository) and the trainer image; ``newTag:`` XOR ``digest:``.
- ``kustomization.yaml`` ``images:``: each model's image by digest (its files, from the model
  card's ``artifact``): entry named ``<model>-model`` (rolling) or ``<model>-model-<variant>``,
  with ``newName:`` the card's repository.
- ``kustomization.yaml`` ``replicas:`` (blue-green, canary): ``<model>-server-<variant>``.
- ``release.yaml``: ConfigMap ``<model>-release`` (rolling) or ``<model>-release-<variant>``
  with ``data.MODEL_VERSION`` (a string) and ``data.MODEL_DIGEST`` (the version's digest from its
  model card, ``registry/<model>/<version>.yaml``).
- ``active-slot.yaml`` (blue-green): Services ``<model>-server`` (active) and
  ``<model>-server-preview`` (idle), ``spec.selector.slot``.
- ``traffic.yaml`` (canary): CanaryWeights ``<model>-server`` (local-config: kustomize reads it,
  never deploys it), ``spec.stable`` and ``spec.canary``; the canary component copies them into
  the generated HTTPRoute and GRPCRoute.

An edit is committed all at once: every changed file is written atomically (temporary file in
the same directory, then rename), the overlay is rendered with kustomize, and if the render
fails every file is restored to its original bytes (exit 3).
"""

from __future__ import annotations

import difflib
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from generator.config import ConfigError, Environment, Image, Platform, load_config
from generator.conventions import (
    CANARY_WEIGHTS_KIND,
    DIGEST_KEY,
    RELEASE_KEY,
    canary_weights_name,
    model_image_name,
    release_config_map_name,
    variant_image_name,
)
from generator.files import write_atomic
from generator.inputs import InputError, load_yaml_stream, read_text
from generator.paths import REPO_ROOT
from generator.release.errors import Refused, ToolFailed
from generator.release.files import definition_problem, overlay_problems
from generator.strategy import BLUE_GREEN, CANARY, Strategy
from generator.tools import ToolError, render_overlay

ROOT_ENV_VAR = "ML_GITOPS_ROOT"


#: The renderer; tests replace it to simulate a kustomize failure.
render: Callable[[Path], str] = render_overlay


def resolve_root(path: str | Path | None) -> Path:
    """The repository root: ``--repo``, else $ML_GITOPS_ROOT, else this checkout."""
    chosen = path or os.environ.get(ROOT_ENV_VAR) or REPO_ROOT
    root = Path(chosen).resolve()
    if not (root / "platform.yaml").is_file():
        raise Refused(f"{root} has no platform.yaml: not the repository root (use --repo)")
    return root


def load_platform(root: Path) -> Platform:
    try:
        return load_config(root / "platform.yaml")
    except ConfigError as exc:
        raise Refused(f"platform.yaml is invalid: {exc.problems[0]}") from exc


def find_env(platform: Platform, name: str) -> Environment:
    """The environment ``name`` of platform.yaml; refused, naming them all, when there is none."""
    known = ", ".join(e.name for e in platform.environments)
    if not name:
        raise Refused(f"name an environment with ENV= (platform.yaml has: {known})")
    for env in platform.environments:
        if env.name == name:
            return env
    raise Refused(f"unknown environment {name!r} (platform.yaml has: {known})")


@dataclass(frozen=True)
class Pin(Image):
    """An image as an overlay pins it: the real repository and a tag or a digest."""

    @property
    def short(self) -> str:
        """``inference-server:0.2.0`` or ``inference-server@sha256:0123456789ab``."""
        name = self.repository.rsplit("/", 1)[-1]
        return f"{name}@{self.digest[:19]}" if self.digest else f"{name}:{self.tag}"

    @property
    def version(self) -> str:
        """The tag or the short digest (for one-line summaries)."""
        return self.digest[:19] if self.digest else self.tag


@dataclass(frozen=True)
class Release:
    """What one environment (or one variant of it) runs: server image, model versions, their
    files' digests and their model images."""

    server: Pin
    versions: tuple[tuple[str, str], ...]  # (model, MODEL_VERSION)
    digests: tuple[tuple[str, str], ...] = ()  # (model, MODEL_DIGEST)
    images: tuple[tuple[str, Pin | None], ...] = ()  # (model, its model image; None: not pinned)

    def describe(self) -> str:
        models = ", ".join(f"{m} v{v}" for m, v in self.versions)
        return f"server {self.server.short}, {models}"


def check_tag(tag: str) -> None:
    """Refuse a tag platform.yaml would refuse (the same definition): bad characters, 'latest'."""
    if tag == "latest":
        raise Refused("'latest' is a mutable tag; pin a version tag or a digest")
    if problem := definition_problem("imageTag", tag):
        raise Refused(f"not a valid image tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters): {problem}")


def check_digest(digest: str) -> None:
    """Refuse anything but ``sha256:`` and 64 lower-case hex digits."""
    if problem := definition_problem("imageDigest", digest):
        raise Refused(f"not a valid digest (sha256: followed by 64 lower-case hex digits): {problem}")


# --- one YAML file, round-trip ------------------------------------------------------------


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096
    return y


class YamlFile:
    """A (multi-document) YAML file loaded for round-trip editing."""

    def __init__(self, path: Path, label: str):
        self.path = path
        try:
            text = read_text(path, label)  # a regular UTF-8 file, or one line saying why not
            load_yaml_stream(text, label)  # strict: duplicate keys, depth
        except InputError as exc:
            raise Refused("\n".join(exc.problems)) from exc
        self.original = text.encode("utf-8")
        self.docs: list[Any] = [doc for doc in _yaml().load_all(text) if doc is not None]

    def dump(self) -> bytes:
        out = io.StringIO()
        y = _yaml()
        if len(self.docs) == 1:
            y.dump(self.docs[0], out)
        else:
            y.dump_all(self.docs, out)
        return out.getvalue().encode("utf-8")

    @property
    def changed(self) -> bool:
        return self.dump() != self.original

    def find(self, kind: str, name: str) -> Any:
        """The document of ``kind`` named ``name`` (a ruamel CommentedMap), or None."""
        for doc in self.docs:
            if isinstance(doc, dict) and doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
                return doc
        return None


def _set_scalar(mapping: CommentedMap, key: str, value: Any, *, replace: str | None = None) -> None:
    """Set ``mapping[key]``; when ``replace`` names an existing key, put it in that key's place."""
    if replace and replace in mapping and key not in mapping:
        position = list(mapping).index(replace)
        del mapping[replace]
        mapping.insert(position, key, value)
    else:
        if replace in mapping:
            del mapping[replace]
        mapping[key] = value


# --- one environment overlay --------------------------------------------------------------


@dataclass
class Overlay:
    """The editable release state of one environment."""

    root: Path
    platform: Platform
    env: Environment
    _files: dict[str, YamlFile] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse, before anything reads or renders the overlay, when a release file has the wrong
        shape (release-files.schema.json): one line per problem, naming the file and the field."""
        problems = overlay_problems(self.dir, self.env.overlay)
        if problems:
            raise Refused("\n".join(problems))

    @property
    def dir(self) -> Path:
        return self.root / self.env.overlay

    @property
    def strategy(self) -> Strategy:
        return self.env.strategy

    @property
    def variants(self) -> tuple[str, ...]:
        """The environment's slots or tracks (refused for a rolling one, which has none)."""
        if not self.strategy.progressive:
            raise Refused(f"{self.env.name} is a {self.strategy} environment: it has no slots or tracks")
        return self.strategy.variants

    @property
    def models(self) -> list[str]:
        return [m.name for m in self.platform.models]

    def file(self, name: str) -> YamlFile:
        if name not in self._files:
            path = self.dir / name
            if not path.is_file():
                raise Refused(
                    f"{self.env.overlay}/{name} does not exist (see docs/releases.md, 'How a release is pinned')"
                )
            self._files[name] = YamlFile(path, f"{self.env.overlay}/{name}")
        return self._files[name]

    @property
    def kustomization(self) -> CommentedMap:
        return self.file("kustomization.yaml").docs[0]

    # images ------------------------------------------------------------------------------

    def _image_entry(self, name: str) -> CommentedMap | None:
        for entry in self.kustomization.get("images") or []:
            if entry.get("name") == name:
                return entry
        return None

    def _new_image_entry(self, name: str) -> CommentedMap:
        images = self.kustomization.get("images")
        if images is None:
            self.kustomization["images"] = images = []
        entry = CommentedMap(name=name)
        images.append(entry)
        return entry

    def _settle_comment(self, entry: CommentedMap) -> None:
        """Keep a comment that followed the list's previous last entry (it introduces the next key
        of the kustomization) after ``entry``, which an edit appended."""
        images = self.kustomization.get("images") or []
        if len(images) < 2 or images[-1] is not entry:
            return
        previous = images[-2]
        comment = previous.ca.items.get(list(previous)[-1]) if previous else None
        if comment and len(comment) > 2 and comment[2] is not None:
            entry.ca.items[list(entry)[-1]] = [None, None, comment[2], None]
            comment[2] = None

    def _server_entry_name(self, variant: str) -> str:
        repo = self.platform.server_image.repository
        return variant_image_name(repo, variant) if variant else repo

    def _read_pin(self, entry_name: str, default_repo: str, default_tag: str, default_digest: str) -> Pin:
        entry = self._image_entry(entry_name)
        if entry is None:
            return Pin(default_repo, default_tag, default_digest)
        repo = str(entry.get("newName") or default_repo)
        digest = str(entry.get("digest") or "")
        return Pin(repo, "" if digest else str(entry.get("newTag") or default_tag), digest)

    def server_pin(self, variant: str = "") -> Pin:
        image = self.platform.server_image
        return self._read_pin(self._server_entry_name(variant), image.repository, image.tag, image.digest)

    def trainer_pin(self) -> Pin:
        image = self.platform.trainer_image
        return self._read_pin(image.repository, image.repository, image.tag, image.digest)

    def _write_pin(self, entry_name: str, pin: Pin, new_name: bool) -> None:
        if pin.tag and self.env.require_digest:
            raise Refused(
                f"{self.env.name} requires image digests (requireDigest in platform.yaml); "
                f"{pin.reference} is pinned by tag"
            )
        entry = self._image_entry(entry_name) or self._new_image_entry(entry_name)
        if new_name:
            entry["newName"] = pin.repository
        if pin.digest:
            _set_scalar(entry, "digest", pin.digest, replace="newTag")
        else:
            _set_scalar(entry, "newTag", DoubleQuotedScalarString(pin.tag), replace="digest")
        self._settle_comment(entry)

    def set_server_pin(self, pin: Pin, variant: str = "") -> None:
        self._write_pin(self._server_entry_name(variant), pin, new_name=bool(variant))

    def set_trainer_pin(self, pin: Pin) -> None:
        self._write_pin(self.platform.trainer_image.repository, pin, new_name=False)

    # model versions ------------------------------------------------------------------------

    def _release_doc(self, model: str, variant: str) -> CommentedMap:
        name = release_config_map_name(model, variant)
        doc = self.file("release.yaml").find("ConfigMap", name)
        if doc is None:
            raise Refused(f"{self.env.overlay}/release.yaml has no ConfigMap {name}")
        return doc

    def model_version(self, model: str, variant: str = "") -> str:
        data = self._release_doc(model, variant).get("data") or {}
        return str(data.get(RELEASE_KEY, ""))

    def set_model_version(self, model: str, version: str, variant: str = "") -> None:
        doc = self._release_doc(model, variant)
        if doc.get("data") is None:
            doc["data"] = CommentedMap()
        doc["data"][RELEASE_KEY] = DoubleQuotedScalarString(version)

    def model_digest(self, model: str, variant: str = "") -> str:
        data = self._release_doc(model, variant).get("data") or {}
        return str(data.get(DIGEST_KEY, ""))

    def set_model_digest(self, model: str, digest: str, variant: str = "") -> None:
        """Set MODEL_DIGEST; an empty ``digest`` (a source pinned without one) removes the key, since
        ``MODEL_DIGEST: ""`` is no digest and does not fit release-files.schema.json."""
        doc = self._release_doc(model, variant)
        if doc.get("data") is None:
            doc["data"] = CommentedMap()
        if not digest:
            doc["data"].pop(DIGEST_KEY, None)
            return
        _set_scalar(doc["data"], DIGEST_KEY, DoubleQuotedScalarString(digest))

    def _model_image_entry_name(self, model: str, variant: str) -> str:
        return model_image_name(model, variant)

    def model_image(self, model: str, variant: str = "") -> Pin | None:
        """The model image a server pulls, as ``images:`` pins it; None when no entry pins a digest."""
        name = self._model_image_entry_name(model, variant)
        entry = self._image_entry(name)
        if entry is None or not entry.get("digest"):
            return None
        return Pin(str(entry.get("newName") or name), "", str(entry["digest"]))

    def set_model_image(self, model: str, pin: Pin | None, variant: str = "") -> None:
        """Pin a model image by digest (``newName`` where the entry's name is not the repository);
        None removes the pin (a version without an image, which only a training environment serves)."""
        name = self._model_image_entry_name(model, variant)
        entry = self._image_entry(name)
        if pin is None:
            if entry is not None:
                self.kustomization["images"].remove(entry)
            return
        if not pin.digest:
            raise Refused(f"a model image is pinned by digest, not by tag ({pin.reference})")
        entry = entry or self._new_image_entry(name)
        entry["newName"] = pin.repository
        entry.pop("newTag", None)
        entry["digest"] = pin.digest
        self._settle_comment(entry)

    def live_release(self) -> tuple[Release, str]:
        """What the environment serves in production (what ``make promote`` copies onwards and
        ``make serve ENV=`` serves), and where in the overlay that is."""
        variant, where = self.strategy.live(self)
        return self.release(variant), where

    def release(self, variant: str = "") -> Release:
        return Release(
            self.server_pin(variant),
            tuple((m, self.model_version(m, variant)) for m in self.models),
            tuple((m, self.model_digest(m, variant)) for m in self.models),
            tuple((m, self.model_image(m, variant)) for m in self.models),
        )

    def set_release(self, release: Release, variant: str = "") -> None:
        self.set_server_pin(release.server, variant)
        for model, version in release.versions:
            self.set_model_version(model, version, variant)
        for model, digest in release.digests:
            self.set_model_digest(model, digest, variant)
        for model, image in release.images:
            self.set_model_image(model, image, variant)

    # replicas (blue-green, canary) ---------------------------------------------------------------

    def _replica_entry(self, name: str) -> CommentedMap | None:
        for entry in self.kustomization.get("replicas") or []:
            if entry.get("name") == name:
                return entry
        return None

    def replicas(self, model: str, variant: str) -> int:
        name = f"{model}-server-{variant}"
        entry = self._replica_entry(name)
        if entry is None:
            raise Refused(f"{self.env.overlay}/kustomization.yaml has no replicas entry for {name}")
        return int(entry["count"])

    def set_replicas(self, model: str, variant: str, count: int) -> None:
        name = f"{model}-server-{variant}"
        entry = self._replica_entry(name)
        if entry is None:
            raise Refused(f"{self.env.overlay}/kustomization.yaml has no replicas entry for {name}")
        entry["count"] = count

    # blue-green --------------------------------------------------------------------------------

    def _slot_service(self, name: str) -> dict:
        doc = self.file(BLUE_GREEN.traffic_file).find("Service", name)
        selector = (doc.get("spec") or {}).get("selector") if doc is not None else None
        if doc is None or not isinstance(selector, dict) or BLUE_GREEN.variant_label not in selector:
            raise Refused(f"{self.env.overlay}/{BLUE_GREEN.traffic_file} has no Service {name} selecting a slot")
        return selector

    def active_slot(self, model: str) -> str:
        slot = str(self._slot_service(f"{model}-server")[BLUE_GREEN.variant_label])
        if slot not in self.variants:
            raise Refused(f"{self.env.overlay}/{BLUE_GREEN.traffic_file}: {model}-server selects unknown slot {slot!r}")
        return slot

    def idle_slot(self, model: str) -> str:
        first, second = self.variants
        return second if self.active_slot(model) == first else first

    def set_active_slot(self, model: str, slot: str) -> None:
        first, second = self.variants
        server = f"{model}-server"
        self._slot_service(server)[BLUE_GREEN.variant_label] = slot
        self._slot_service(BLUE_GREEN.preview_service(server))[BLUE_GREEN.variant_label] = (
            second if slot == first else first
        )

    def common_slot(self, which: str) -> str:
        """The active (or idle) slot, the same for every model (refused otherwise)."""
        slots = {(self.active_slot(m) if which == "active" else self.idle_slot(m)) for m in self.models}
        if len(slots) != 1:
            raise Refused(f"{self.env.name}: the models have different active slots; fix active-slot.yaml by hand")
        return slots.pop()

    # canary ------------------------------------------------------------------------------------

    def _canary_weights(self, model: str) -> dict:
        name = canary_weights_name(model)
        doc = self.file(CANARY.traffic_file).find(CANARY_WEIGHTS_KIND, name)
        spec = doc.get("spec") if doc is not None else None
        if not isinstance(spec, dict) or any(not isinstance(spec.get(v), int) for v in self.variants):
            raise Refused(
                f"{self.env.overlay}/traffic.yaml has no {CANARY_WEIGHTS_KIND} {name} with integer "
                f"spec.{' and spec.'.join(self.variants)}"
            )
        return spec

    def weights(self, model: str) -> dict[str, int]:
        """Each track's traffic weight, as traffic.yaml pins it."""
        spec = self._canary_weights(model)
        return {variant: int(spec[variant]) for variant in self.variants}

    def set_weights(self, model: str, weights: dict[str, int]) -> None:
        """Pin each track's traffic weight in traffic.yaml."""
        spec = self._canary_weights(model)
        for variant in self.variants:
            spec[variant] = weights[variant]

    # committing ------------------------------------------------------------------------------

    def changed_files(self) -> list[YamlFile]:
        return [f for f in self._files.values() if f.changed]

    def commit(self) -> list[str]:
        """Write every changed file atomically, then prove the overlay still builds; on a failed
        build restore every file and raise ToolFailed. Returns the changed paths (repo-relative)."""
        changed = self.changed_files()
        written: list[YamlFile] = []
        try:
            for f in changed:
                write_atomic(f.path, f.dump())
                written.append(f)
            render(self.dir)
        except (ToolError, OSError) as exc:
            for f in written:
                write_atomic(f.path, f.original)
            raise ToolFailed(
                f"{self.env.overlay} no longer builds after the edit, so every file was restored: {exc}"
            ) from exc
        return [f.path.relative_to(self.root).as_posix() for f in changed]

    def preview(self) -> str:
        """The edit as a unified diff, after proving it builds in a scratch copy of overlays/."""
        changed = self.changed_files()
        with tempfile.TemporaryDirectory(prefix="release-dry-run-") as tmp:
            scratch = Path(tmp) / "overlays"
            shutil.copytree(self.root / "overlays", scratch, symlinks=True)
            for f in changed:
                (scratch / f.path.relative_to(self.root / "overlays")).write_bytes(f.dump())
            try:
                render(scratch / self.dir.relative_to(self.root / "overlays"))
            except ToolError as exc:
                raise ToolFailed(f"{self.env.overlay} would no longer build after the edit: {exc}") from exc
        out: list[str] = []
        for f in changed:
            rel = f.path.relative_to(self.root).as_posix()
            out += difflib.unified_diff(
                f.original.decode().splitlines(keepends=True),
                f.dump().decode().splitlines(keepends=True),
                f"a/{rel}",
                f"b/{rel}",
            )
        return "".join(out)
