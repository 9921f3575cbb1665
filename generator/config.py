"""Load platform.yaml, check it (JSON Schema, then what a schema cannot express) and turn it
into typed, immutable settings that the constructs read.

Every problem is reported at once, one line each, as ``<file>: <path.inside>: <message>``,
so a platform engineer fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from croniter import croniter

from generator.inputs import (
    InputError,
    describe,
    document_problems,
    dotted,
    load_yaml,
    read_text,
    shown,
    strict_validator,
)
from generator.strategy import Strategy, strategy_named

SCHEMA_PATH = Path(__file__).with_name("platform.schema.json")
#: Fields of platform.yaml where a newline is text, not a mistake.
FREE_TEXT = frozenset({"system.description"})
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RESERVED_OVERLAYS = {"overlays/base", "overlays/components"}


class ConfigError(Exception):
    """platform.yaml is invalid; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --- typed settings ------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A container image: repository plus a tag or a digest (the digest wins)."""

    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def reference(self) -> str:
        """The pullable reference, ``repo@sha256:...`` or ``repo:tag``."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Resources:
    """cpu and memory requests and limits, as Kubernetes quantities."""

    requests: dict[str, str]
    limits: dict[str, str]

    def as_k8s(self) -> dict[str, dict[str, str]]:
        """The ``resources`` block of a container."""
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class Model:
    """One model the platform trains and serves."""

    name: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    backend: str


@dataclass(frozen=True)
class Gateway:
    """The Gateway API Gateway that canary HTTPRoutes attach to (namespace "" = the route's own)."""

    name: str = "ml-gateway"
    namespace: str = ""


@dataclass(frozen=True)
class Serving:
    """How the inference service runs (shared by every model)."""

    port: int
    workers: int
    threads: int
    resources: Resources
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int
    pdb: dict[str, int]
    gateway: Gateway
    client_namespaces: tuple[str, ...] = ()
    grpc_port: int = 8500


@dataclass(frozen=True)
class Storage:
    """The model-store volume that training writes and the server reads."""

    claim_name: str
    size: str
    access_modes: tuple[str, ...]
    storage_class: str | None


@dataclass(frozen=True)
class ClusterDNS:
    """The cluster DNS pods, which the workers of a distributed training Job must reach."""

    namespace: str = "kube-system"
    pod_labels: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"),)


@dataclass(frozen=True)
class Training:
    """How the training Job runs (``resources`` and ``gpus`` are per worker pod)."""

    resources: Resources
    gpus: int
    tolerations: tuple[dict[str, Any], ...]
    node_selector: dict[str, str]
    backoff_limit: int
    active_deadline_seconds: int
    ttl_seconds_after_finished: int
    schedule: str | None
    dataset_path: str
    storage: Storage
    #: Pods that train together on MultiWorkerMirroredStrategy (an Indexed Job when > 1).
    workers: int = 1
    cluster_dns: ClusterDNS = ClusterDNS()


@dataclass(frozen=True)
class ModelArtifacts:
    """Where model versions live as OCI images, and how a serving pod gets the pinned one."""

    #: Image repository prefix: model ``m`` lives at ``<repository>/m``.
    repository: str
    #: ``initContainer`` (the server image pulls the files into an emptyDir) or ``imageVolume``.
    delivery: str = "initContainer"
    #: A dockerconfigjson Secret with read credentials ("" = anonymous pulls).
    pull_secret: str = ""
    #: A dockerconfigjson Secret the training Jobs push with ("" = anonymous pushes).
    push_secret: str = ""

    @property
    def registry_port(self) -> int:
        """The port a pod must reach to pull: the one in the repository's host, else HTTPS's."""
        host = self.repository.split("/", 1)[0]
        return int(host.rsplit(":", 1)[1]) if ":" in host else 443


@dataclass(frozen=True)
class Monitoring:
    """Service-level objectives the alerts and dashboard are built on."""

    availability: float = 0.999
    latency_seconds: float = 0.25
    latency_percentile: float = 0.99
    rule_labels: tuple[tuple[str, str], ...] = ()
    prometheus_namespace: str = "monitoring"


@dataclass(frozen=True)
class Environment:
    """One deployment target: an overlay synced by one Argo CD Application."""

    name: str
    namespace: str
    overlay: str
    strategy: Strategy
    require_digest: bool
    automated: bool
    prune: bool
    self_heal: bool
    #: Whether the environment trains (its overlay adds the strategy's training component) or
    #: only serves the model images it pins: serve-only unless platform.yaml says so.
    train: bool = False
    #: Quality gates on model-card metrics (``environments[].gates``), sorted (name, threshold).
    gates: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ArgoCD:
    """Where Argo CD runs and where it reads this repository from."""

    namespace: str
    project: str
    repo_url: str
    target_revision: str


@dataclass(frozen=True)
class Platform:
    """The whole of platform.yaml, checked."""

    name: str
    description: str
    server_image: Image
    trainer_image: Image
    models: tuple[Model, ...]
    serving: Serving
    training: Training
    environments: tuple[Environment, ...]
    argocd: ArgoCD
    monitoring: Monitoring
    model_artifacts: ModelArtifacts

    def artifact_repository(self, model: str) -> str:
        """The image repository of one model's versions (``<modelArtifacts.repository>/<model>``)."""
        return f"{self.model_artifacts.repository}/{model}"


# --- loading and checking -----------------------------------------------------------------


def is_cron(value: object) -> bool:
    """A schedule a Kubernetes CronJob accepts: five fields (or a macro such as @weekly) that
    croniter parses (no seconds field, no time zone prefix)."""
    if not isinstance(value, str):
        return True  # the type keyword reports it
    fields = value.split(" ")
    return (len(fields) == 5 or (len(fields) == 1 and value.startswith("@"))) and croniter.is_valid(value)


@lru_cache(maxsize=1)
def _schema_validator() -> Any:
    return strict_validator(json.loads(SCHEMA_PATH.read_text()), {"cron": is_cron})


def _describe(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """A schema error in platform.yaml's own words where they help, else as every file's."""
    path = list(error.absolute_path)
    if error.validator == "not" and path and path[-1] == "tag":
        return [(dotted(path), "'latest' is mutable; pin a version tag or a digest")]
    if error.validator == "oneOf" and isinstance(error.instance, dict) and "repository" in error.instance:
        return [(dotted(path), "give exactly one of tag or digest")]
    if error.validator in ("minProperties", "maxProperties") and path[-1:] == ["podDisruptionBudget"]:
        return [(dotted(path), "give exactly one of maxUnavailable or minAvailable")]
    if error.validator == "format" and error.validator_value == "cron":
        return [(dotted(path), f"{shown(error.instance)} is not a CronJob schedule (five fields, or @hourly ...)")]
    return describe(error)


_QUANTITY = re.compile(r"^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS: dict[str | None, Decimal | int] = {
    None: 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_quantity(text: str) -> Decimal:
    """Value of a Kubernetes quantity such as ``250m`` or ``768Mi`` (schema-checked first)."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = match.groups()
    return Decimal(number) * _FACTORS[suffix]


def _semantic_problems(data: dict, base_dir: Path) -> list[tuple[str, str]]:
    """Checks a JSON Schema cannot express: orderings, uniqueness, paths on disk."""
    problems: list[tuple[str, str]] = []
    if data["serving"].get("grpcPort", 8500) == data["serving"]["port"]:
        problems.append(("serving.grpcPort", f"must differ from serving.port ({data['serving']['port']})"))
    scaling = data["serving"]["autoscaling"]
    if scaling["maxReplicas"] < scaling["minReplicas"]:
        problems.append(("serving.autoscaling.maxReplicas", f"must be >= minReplicas ({scaling['minReplicas']})"))
    min_available = data["serving"]["podDisruptionBudget"].get("minAvailable")
    if min_available is not None and min_available >= scaling["minReplicas"]:
        problems.append(
            (
                "serving.podDisruptionBudget.minAvailable",
                f"must be < autoscaling.minReplicas ({scaling['minReplicas']}), or no pod can ever be evicted",
            )
        )
    for section in ("serving", "training"):
        resources = data[section]["resources"]
        for kind in ("cpu", "memory"):
            if parse_quantity(resources["requests"][kind]) > parse_quantity(resources["limits"][kind]):
                problems.append(
                    (f"{section}.resources.requests.{kind}", f"must be <= limits.{kind} ({resources['limits'][kind]})")
                )
    repository = data["modelArtifacts"]["repository"]
    host = repository.split("/", 1)[0]
    if "/" not in repository or not ("." in host or ":" in host or host == "localhost"):
        problems.append(
            (
                "modelArtifacts.repository",
                f"{repository!r} names no registry host: start it with one (registry.example.com/ml/models, "
                "host:port/ml/models), as every pull and push of a model image needs",
            )
        )
    modes = data["training"]["storage"].get("accessModes", ["ReadWriteMany"])
    if "ReadWriteMany" not in modes:
        problems.append(
            (
                "training.storage.accessModes",
                f"{modes} cannot work: the training Job writes the model store while server pods on "
                "other nodes read it; use ReadWriteMany (an NFS-like storage class)",
            )
        )
    for list_name, field in (
        ("models", "name"),
        ("environments", "name"),
        ("environments", "namespace"),
        ("environments", "overlay"),
    ):
        seen: dict[str, int] = {}
        for index, item in enumerate(data[list_name]):
            value = item[field]
            if value in seen:
                problems.append(
                    (f"{list_name}[{index}].{field}", f"duplicate {field} {value!r} (also {list_name}[{seen[value]}])")
                )
            seen.setdefault(value, index)
    for index, env in enumerate(data["environments"]):
        where = f"environments[{index}]"
        namespace = env["namespace"]
        if not (DNS1123_LABEL.fullmatch(namespace) and len(namespace) <= 63):
            problems.append(
                (
                    f"{where}.namespace",
                    f"{namespace!r} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)",
                )
            )
        overlay = env["overlay"]
        if overlay in RESERVED_OVERLAYS:
            problems.append((f"{where}.overlay", f"{overlay!r} is generated; an environment needs its own overlay"))
        elif not (base_dir / overlay / "kustomization.yaml").is_file():
            state = (
                "is not a regular file" if (base_dir / overlay / "kustomization.yaml").exists() else "does not exist"
            )
            problems.append((f"{where}.overlay", f"{overlay}/kustomization.yaml {state}"))
        if env["sync"].get("selfHeal") and not env["sync"]["automated"]:
            problems.append((f"{where}.sync.selfHeal", "needs automated: true (Argo CD ignores it otherwise)"))
        if env["sync"].get("prune") and not env["sync"]["automated"]:
            problems.append((f"{where}.sync.prune", "needs automated: true (Argo CD ignores it otherwise)"))
    return problems


def _to_settings(data: dict) -> Platform:
    def image(d: dict) -> Image:
        return Image(d["repository"], d.get("tag", ""), d.get("digest", ""))

    def resources(d: dict) -> Resources:
        return Resources(dict(d["requests"]), dict(d["limits"]))

    s, t = data["serving"], data["training"]
    storage = t["storage"]
    return Platform(
        name=data["system"]["name"],
        description=data["system"].get("description", ""),
        server_image=image(data["images"]["server"]),
        trainer_image=image(data["images"]["trainer"]),
        models=tuple(
            Model(m["name"], tuple(m["inputShape"]), tuple(m["classes"]), m.get("backend", "litert"))
            for m in data["models"]
        ),
        serving=Serving(
            port=s["port"],
            workers=s["gunicorn"]["workers"],
            threads=s["gunicorn"]["threads"],
            resources=resources(s["resources"]),
            min_replicas=s["autoscaling"]["minReplicas"],
            max_replicas=s["autoscaling"]["maxReplicas"],
            target_cpu_percent=s["autoscaling"]["targetCPUUtilizationPercentage"],
            pdb=dict(s["podDisruptionBudget"]),
            gateway=Gateway(**s.get("gateway", {})),
            client_namespaces=tuple(s.get("clientNamespaces", [])),
            grpc_port=s.get("grpcPort", 8500),
        ),
        training=Training(
            resources=resources(t["resources"]),
            gpus=t.get("gpus", 0),
            tolerations=tuple(t.get("tolerations", [])),
            node_selector=dict(t.get("nodeSelector", {})),
            backoff_limit=t["backoffLimit"],
            active_deadline_seconds=t["activeDeadlineSeconds"],
            ttl_seconds_after_finished=t["ttlSecondsAfterFinished"],
            schedule=t.get("schedule"),
            dataset_path=t.get("dataset", {}).get("path", ""),
            storage=Storage(
                storage["claimName"],
                storage["size"],
                tuple(storage.get("accessModes", ["ReadWriteMany"])),
                storage.get("storageClassName"),
            ),
            workers=t.get("workers", 1),
            cluster_dns=_cluster_dns(t.get("clusterDNS")),
        ),
        environments=tuple(
            Environment(
                e["name"],
                e["namespace"],
                e["overlay"],
                strategy_named(e["strategy"]),
                e.get("requireDigest", False),
                e["sync"]["automated"],
                e["sync"].get("prune", False),
                e["sync"].get("selfHeal", False),
                e.get("train", False),
                tuple(sorted(e.get("gates", {}).items())),
            )
            for e in data["environments"]
        ),
        argocd=ArgoCD(
            data["argocd"]["namespace"],
            data["argocd"]["project"],
            data["argocd"]["repoURL"],
            data["argocd"]["targetRevision"],
        ),
        monitoring=_monitoring(data.get("monitoring")),
        model_artifacts=ModelArtifacts(
            data["modelArtifacts"]["repository"],
            data["modelArtifacts"].get("delivery", "initContainer"),
            data["modelArtifacts"].get("pullSecret", ""),
            data["modelArtifacts"].get("pushSecret", ""),
        ),
    )


def _cluster_dns(data: dict | None) -> ClusterDNS:
    if data is None:
        return ClusterDNS()
    return ClusterDNS(data["namespace"], tuple(sorted(data["podLabels"].items())))


def _monitoring(data: dict | None) -> Monitoring:
    if data is None:
        return Monitoring()
    return Monitoring(
        data["availabilityObjective"],
        data["latencyObjectiveSeconds"],
        data["latencyObjectivePercentile"],
        tuple(sorted(data.get("ruleLabels", {}).items())),
        data["prometheusNamespace"],
    )


def load_config(path: str | Path) -> Platform:
    """Read and check platform.yaml; raise ConfigError listing every problem found."""
    path = Path(path)
    label = path.name
    try:
        data = load_yaml(read_text(path, label), label)
    except InputError as exc:
        raise ConfigError(exc.problems) from exc
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: (top level): must be a mapping, got {type(data).__name__}"])
    problems = document_problems(_schema_validator(), data, FREE_TEXT, _describe)
    if not problems:
        problems = _semantic_problems(data, path.parent)
    if problems:
        raise ConfigError([f"{label}: {where}: {message}" for where, message in dict.fromkeys(problems)])
    return _to_settings(data)
