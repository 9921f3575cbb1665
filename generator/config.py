"""platform.yaml, declared once: typed, immutable pydantic models that the constructs read, from
which ``make schema`` writes ``platform.schema.json`` (what editors and the checks use).

Loading checks a file in steps, and reports every problem of a step at once, one line each, as
``<file>: <path.inside>: <message>``, so a platform engineer fixes a file in one pass:

1. the input layer and the generated JSON Schema (``generator/inputs.py``: messages that name
   the key, whatever the value);
2. the models take the checked data (``Platform.model_validate``);
3. what a schema cannot express (orderings, uniqueness, paths on disk), on the models.

Each model mirrors one mapping of platform.yaml (camelCase keys in the file, snake_case
attributes here); a few properties give the flat names the constructs read
(``serving.min_replicas`` for ``serving.autoscaling.minReplicas``). A model's docstring and its
fields' descriptions are what an editor shows for the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import jsonschema
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from generator.conventions import environment_project
from generator.inputs import (
    InputError,
    Problem,
    describe,
    document_problems,
    dotted,
    load_yaml,
    read_text,
    shown,
    strict_validator,
)
from generator.model_schema import Definition, json_schema
from generator.paths import GUARDRAILS_OVERLAY, PREVIEW_OVERLAY
from generator.strategy import CANARY, STRATEGIES, Strategy, strategy_named
from services.contract import (
    DIGEST,
    DNS_LABEL,
    DNS_LABEL_MAX,
    DNS_SUBDOMAIN,
    GRPC_PORT,
    IMAGE_REPOSITORY,
    IMAGE_TAG,
    MAX_SERVER_WORKERS,
    MAX_TRAINING_WORKERS,
    METRICS_PORT,
    NAME_MAX,
    QUANTITY,
    TOTAL_WEIGHT,
    matches,
    parse_quantity,
    whole,
)

SCHEMA_PATH = Path(__file__).with_name("platform.schema.json")
#: Fields of platform.yaml where a newline is text, not a mistake.
FREE_TEXT = frozenset({"system.description"})
RESERVED_OVERLAYS = {"overlays/base", "overlays/components", PREVIEW_OVERLAY, GUARDRAILS_OVERLAY}
#: Argo CD projects named <argocd.project>-<suffix> that are not an environment's (ArgoCD below).
RESERVED_PROJECT_SUFFIXES = {
    "admin": "admin",
    "apps": "app-of-apps",
    "previews": "pull-request previews",
    "preview-guardrails": "previews' guardrails",
}
#: Keys that moved: old path -> where they live now (the old key gets a line that says so).
MOVED = {"training.clusterDNS": "cluster.dns"}
INT32_MAX = 2**31 - 1
#: A GitHub organization or user name, and a repository name (previews' Pull Request generator).
GITHUB_OWNER, GITHUB_REPO = r"[A-Za-z0-9][A-Za-z0-9-]{0,38}", r"[A-Za-z0-9._-]{1,100}"
INT64_MAX = 2**63 - 1


class ConfigError(Exception):
    """platform.yaml is invalid; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the rules of single values (services/contract.py), as named schema definitions ---------------

Name = Annotated[
    str,
    StringConstraints(pattern=whole(DNS_LABEL), max_length=NAME_MAX),
    Definition("dnsLabel", f"A DNS-1123 label of at most {NAME_MAX} characters: lower-case letters, digits and '-'"),
]
Quantity = Annotated[
    str,
    StringConstraints(pattern=whole(QUANTITY)),
    Definition("quantity", "A Kubernetes quantity, such as 250m, 2 or 768Mi"),
]
ImageRepository = Annotated[
    str,
    StringConstraints(pattern=whole(IMAGE_REPOSITORY)),
    Definition("imageRepository", "An image repository: host[:port]/path, lower-case"),
]
ImageTag = Annotated[
    str,
    StringConstraints(pattern=whole(IMAGE_TAG)),
    Definition("imageTag", "An image tag: never the mutable 'latest'", **{"not": {"const": "latest"}}),
]
ImageDigest = Annotated[
    str,
    StringConstraints(pattern=whole(DIGEST)),
    Definition("imageDigest", "An image digest, sha256:<64 lower-case hex digits>"),
]
Hostname = Annotated[
    str,
    StringConstraints(pattern=whole(rf"(\*\.)?{DNS_SUBDOMAIN}"), max_length=253),
    Definition("hostname", "A host name as Gateway API matches one: a DNS-1123 subdomain, '*.' for a wildcard"),
]
#: Labels, kept sorted: the manifests do not depend on the order platform.yaml lists them in.
Labels = Annotated[dict[str, str], AfterValidator(lambda labels: dict(sorted(labels.items())))]


def _strategy(name: object) -> Strategy:
    """The Strategy a name stands for (platform.yaml says ``strategy: canary``)."""
    if isinstance(name, Strategy):
        return name
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ValueError(f"must be one of {', '.join(STRATEGIES)}")
    return strategy_named(name)


#: An environment's release strategy: written as its name, read as the Strategy (generator/strategy.py).
StrategyName = Annotated[
    Strategy,
    PlainValidator(_strategy),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "enum": list(STRATEGIES)}),
]


class Section(BaseModel):
    """A mapping of platform.yaml: camelCase keys, no unknown key, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)


# --- the models ---------------------------------------------------------------------------------


class System(Section):
    """What the system is called: the Argo CD Applications' and the app.kubernetes.io/part-of name."""

    name: Name
    description: str = ""


@dataclass(frozen=True)
class Image:
    """A container image: repository plus a tag or a digest (the digest wins)."""

    # A dataclass, built by position where code makes one (a variant's image, an overlay's Pin
    # extends it); checked like the models when platform.yaml is loaded.
    __pydantic_config__ = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["tag"]}, {"required": ["digest"]}]}
    )
    json_schema_definition: ClassVar[str] = "image"

    repository: ImageRepository
    tag: ImageTag = ""
    digest: ImageDigest = ""

    @property
    def reference(self) -> str:
        """The pullable reference, ``repo@sha256:...`` or ``repo:tag``."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


class Images(Section):
    """The images the platform runs: the model server's and the trainer's."""

    server: Image
    trainer: Image


class CpuMemory(Section):
    """cpu and memory, as Kubernetes quantities."""

    json_schema_definition: ClassVar[str] = "cpuMemory"

    cpu: Quantity
    memory: Quantity


class Resources(Section):
    """cpu and memory requests and limits."""

    json_schema_definition: ClassVar[str] = "resources"

    requests: CpuMemory
    limits: CpuMemory

    def as_k8s(self) -> dict[str, dict[str, str]]:
        """The ``resources`` block of a container."""
        return {"requests": self.requests.model_dump(), "limits": self.limits.model_dump()}


class Model(Section):
    """One model the platform trains and serves."""

    name: Name
    input_shape: tuple[Annotated[int, Field(ge=1, le=65536)], ...] = Field(min_length=1, max_length=4)
    classes: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=2)
    backend: Literal["litert", "tensorflow"] = "litert"


class ModelArtifacts(Section):
    """Where model versions live as OCI images (<repository>/<model>:<version>, recorded in the
    model cards with their digest) and how a serving pod gets the one its environment pins (make
    package-model, make push-model, registry/README.md)"""

    repository: ImageRepository = Field(
        description="Image repository prefix, such as registry.example.com/ml/models: each model is a repository "
        "below it"
    )
    delivery: Literal["initContainer", "imageVolume"] = Field(
        "initContainer",
        description="How a server pod gets its pinned model image: initContainer (any cluster: the server image "
        "pulls it by digest into an emptyDir; the pod may reach DNS and the registry's port) or imageVolume "
        "(Kubernetes mounts the image read-only; 1.31+ with the ImageVolume feature gate, on by default from "
        "1.35; the pod reaches nothing)",
    )
    pull_secret: Name = Field(
        "",
        description="A kubernetes.io/dockerconfigjson Secret in each serving namespace with the registry's read "
        "credentials (never in git); unset: the registry allows anonymous pulls",
    )
    push_secret: Name = Field(
        "",
        description="A kubernetes.io/dockerconfigjson Secret, in each namespace that trains, with write "
        "credentials for the model repository only: the training Job pushes the version it trained (never in "
        "git); unset: anonymous pushes",
    )

    @property
    def registry_port(self) -> int:
        """The port a pod must reach to pull: the one in the repository's host, else HTTPS's."""
        host = self.repository.split("/", 1)[0]
        return int(host.rsplit(":", 1)[1]) if ":" in host else 443


class Gunicorn(Section):
    """The server's gunicorn processes and threads, per pod."""

    workers: int = Field(ge=1, le=MAX_SERVER_WORKERS)
    threads: int = Field(ge=1, le=256)


class Autoscaling(Section):
    """The HorizontalPodAutoscaler of a rolling environment's server."""

    min_replicas: int = Field(ge=1, le=INT32_MAX)
    max_replicas: int = Field(ge=1, le=INT32_MAX)
    target_cpu_percent: int = Field(ge=1, le=100, alias="targetCPUUtilizationPercentage")


class PodDisruptionBudget(Section):
    """The server's PodDisruptionBudget: exactly one of maxUnavailable or minAvailable."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    max_unavailable: int | None = Field(None, ge=1, le=INT32_MAX)
    min_available: int | None = Field(None, ge=1, le=INT32_MAX)

    def as_values(self) -> dict[str, int]:
        """The one bound that is set, keyed as the chart's values (and the API) name it."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Gateway(Section):
    """The Gateway API Gateway that canary HTTPRoutes attach to, and the pods that proxy for it"""

    name: Name
    namespace: Name = Field("", description="Its namespace; unset: the HTTPRoute's own")
    section_name: Name = Field(description="The Gateway's listener the HTTPRoute attaches to (its sectionName)")
    hostnames: tuple[Hostname, ...] = Field(
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="The host names the HTTPRoute answers for (every other host of the listener gets none of it)",
    )
    proxy_pod_labels: Labels = Field(
        min_length=1,
        description="Labels of the Gateway's proxy pods (e.g. gateway.networking.k8s.io/gateway-name: <name>): "
        "the server's NetworkPolicy admits them, not their whole namespace, to the serving ports",
    )


class GrpcServer(Section):
    """The model server's gRPC limits, per gunicorn worker, and whether it serves reflection"""

    max_concurrent_rpcs: int = Field(
        16, ge=1, le=100_000, description="Calls a worker holds at once; more are refused with RESOURCE_EXHAUSTED"
    )
    max_connection_age_seconds: int = Field(
        300, ge=1, le=86400, description="Seconds a connection lives before GOAWAY (clients reconnect and spread)"
    )
    reflection: bool = Field(
        False, description="Serve gRPC server reflection in every environment (it describes every service to anyone)"
    )


class Serving(Section):
    """How the inference service runs (shared by every model)."""

    port: int = Field(ge=1024, le=65535)
    grpc_port: int = Field(
        GRPC_PORT,
        ge=1024,
        le=65535,
        description=f"Port of the TF Serving gRPC API (default {GRPC_PORT}); must differ from port",
    )
    metrics_port: int = Field(
        METRICS_PORT,
        ge=1024,
        le=65535,
        description=f"Port of /metrics alone (default {METRICS_PORT}); must differ from port and grpcPort",
    )
    grpc: GrpcServer = GrpcServer()
    gunicorn: Gunicorn
    resources: Resources
    autoscaling: Autoscaling
    pdb: PodDisruptionBudget = Field(alias="podDisruptionBudget")
    gateway: Gateway
    client_namespaces: tuple[Name, ...] = Field(
        (),
        json_schema_extra={"uniqueItems": True},
        description="Namespaces whose pods may call the serving ports directly (besides the Gateway's proxy pods)",
    )

    @property
    def workers(self) -> int:
        """gunicorn workers per pod."""
        return self.gunicorn.workers

    @property
    def threads(self) -> int:
        """Request threads per gunicorn worker."""
        return self.gunicorn.threads

    @property
    def min_replicas(self) -> int:
        """The autoscaler's floor (and a variant's replicas until an overlay pins them)."""
        return self.autoscaling.min_replicas

    @property
    def max_replicas(self) -> int:
        """The autoscaler's ceiling."""
        return self.autoscaling.max_replicas

    @property
    def target_cpu_percent(self) -> int:
        """The CPU utilisation the autoscaler aims at."""
        return self.autoscaling.target_cpu_percent


class Toleration(Section):
    """A toleration of the training pods, as the Kubernetes API writes one."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=-INT64_MAX - 1, le=INT64_MAX)


class Dataset(Section):
    """The training data."""

    path: str = Field(
        "", description="MNIST .npz file or IDX directory inside the model-store volume; empty = bundled sample"
    )


class Storage(Section):
    """The model-store volume that training writes and the server reads."""

    claim_name: Name
    size: Quantity
    storage_class: str | None = Field(None, min_length=1, alias="storageClassName")
    access_modes: tuple[Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"], ...] = Field(
        ("ReadWriteMany",), min_length=1, json_schema_extra={"uniqueItems": True}
    )


class Training(Section):
    """How the training Job runs (resources and gpus are per worker pod)."""

    resources: Resources
    gpus: int = Field(0, ge=0, le=16)
    workers: int = Field(
        1,
        ge=1,
        le=MAX_TRAINING_WORKERS,
        description="Training pods that train one model together (TensorFlow MultiWorkerMirroredStrategy). 1: a "
        "plain Job; more: an Indexed Job with a headless Service. resources and gpus are per worker",
    )
    tolerations: tuple[Toleration, ...] = ()
    node_selector: dict[str, str] = {}
    backoff_limit: int = Field(ge=0, le=10)
    active_deadline_seconds: int = Field(ge=60, le=INT64_MAX)
    ttl_seconds_after_finished: int = Field(ge=0, le=INT32_MAX)
    schedule: str | None = Field(
        None,
        json_schema_extra={"format": "cron"},
        description="A CronJob schedule: five fields or a macro such as @weekly (checked with croniter)",
    )
    dataset: Dataset = Dataset()
    storage: Storage

    @property
    def dataset_path(self) -> str:
        """The training data inside the model store ("" = the sample bundled with the trainer)."""
        return self.dataset.path


class ClusterDNS(Section):
    """Where the cluster DNS runs: workers of a distributed Job, and pods that pull or push model
    images, may reach it (UDP/TCP 53)"""

    namespace: Name = "kube-system"
    pod_labels: Labels = Field(default_factory=lambda: {"k8s-app": "kube-dns"}, min_length=1)


class Cluster(Section):
    """What the generator needs to know about the cluster it renders for."""

    dns: ClusterDNS = ClusterDNS()


class Monitoring(Section):
    """Service-level objectives and how Prometheus and Grafana discover what the generator emits"""

    availability: float = Field(
        gt=0.9,
        lt=1,
        alias="availabilityObjective",
        description="Share of predict requests answered without a 5xx, e.g. 0.999",
    )
    latency_seconds: float = Field(
        alias="latencyObjectiveSeconds",
        json_schema_extra={"enum": [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]},
        description="Predict latency objective; must be a bucket of the server's latency histogram",
    )
    latency_percentile: float = Field(
        gt=0.5,
        lt=1,
        alias="latencyObjectivePercentile",
        description="Share of predict requests that must meet the latency objective, e.g. 0.99",
    )
    rule_labels: Labels = Field(
        {},
        description="Labels your Prometheus selects ServiceMonitors and PrometheusRules by (e.g. release: "
        "kube-prometheus-stack)",
    )
    prometheus_namespace: Name = Field(
        description="Namespace Prometheus scrapes from (its pods admitted to the metrics port alone)"
    )
    prometheus_pod_labels: Labels = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "prometheus"},
        min_length=1,
        description="Labels of the Prometheus pods the server's NetworkPolicy admits to the metrics port",
    )


class Sync(Section):
    """How Argo CD syncs the environment."""

    automated: bool
    prune: bool = False
    self_heal: bool = False


class SyncWindow(Section):
    """A time window of the environment's AppProject: Argo CD syncs only inside an allow window
    and never inside a deny window (each window's schedule starts it, its duration ends it)."""

    kind: Literal["allow", "deny"]
    schedule: str = Field(
        json_schema_extra={"format": "cron"},
        description="When the window opens: a cron schedule (five fields, checked with croniter)",
    )
    duration: str = Field(
        pattern=r"^([1-9][0-9]*h([1-9][0-9]*m)?|[1-9][0-9]*m)$", description="How long it stays open: 1h, 30m, 8h30m"
    )
    time_zone: str = Field("UTC", pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", description="An IANA time zone name")
    manual_sync: bool = Field(
        False, description="A person may still sync by hand while a deny window is open (an emergency fix)"
    )


class Gates(Section):
    """Quality gates on model-card metrics (registry/<model>/<version>.yaml): make pin-model and
    make promote refuse a version whose card misses one. Each gate names one card metric
    (generator/registry/gates.py)"""

    json_schema_definition: ClassVar[str] = "gates"
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    min_accuracy: float | None = Field(None, ge=0, le=1, description="metrics.holdoutAccuracy must be at least this")
    # Bounded like the other numbers of the file: a threshold past 2**31 gates nothing, and an
    # integer past int64 would not survive a YAML or JSON reader intact.
    max_loss: float | None = Field(None, ge=0, le=INT32_MAX, description="metrics.holdoutLoss must be at most this")
    min_holdout_examples: int | None = Field(
        None,
        ge=1,
        le=INT32_MAX,
        description="metrics.holdoutExamples (the size of the held-out evaluation) must be at least this",
    )


class AnalysisMetric(Section):
    """One metric of the canary analysis: a share of bad requests (5xx, or slower than a bound),
    counted per track as a numerator (bad) and a denominator (all), compared with stable and
    capped. Each query is a PromQL template: ``$namespace``, ``$model``, ``$track`` and
    ``$window`` (seconds, as ``123s``) are filled in; unset, the metric's own (generator/canary/queries.py)"""

    json_schema_definition: ClassVar[str] = "analysisMetric"

    max_increase: float = Field(
        gt=0,
        lt=1,
        description="Effect size: the canary fails only when its bad share exceeds stable's by more than this "
        "(absolute, e.g. 0.005 = half a percentage point) and the difference is significant",
    )
    cap: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The canary fails when its bad share is significantly above this, whatever stable does; unset: "
        "the objective of monitoring (1 - availabilityObjective for errors, 1 - latencyObjectivePercentile for "
        "latency)",
    )
    bad_query: str = Field("", description="PromQL of the bad requests in the window (the numerator); unset: built in")
    total_query: str = Field("", description="PromQL of all requests in the window (the denominator); unset: built in")


class AnalysisMetrics(Section):
    """The metrics every evaluation tests, canary against stable"""

    error_ratio: AnalysisMetric = Field(
        AnalysisMetric(maxIncrease=0.005),
        description="5xx share of predicts (REST and gRPC), compared with stable and capped by the availability "
        "objective",
    )
    latency_p99: AnalysisMetric = Field(
        AnalysisMetric(maxIncrease=0.01),
        alias="latencyP99",
        description="p99 latency, from the latency histogram: the canary's share of predicts slower than stable's "
        "p99 bucket, compared with stable's (maxIncrease), and its share slower than "
        "monitoring.latencyObjectiveSeconds, capped (cap; default 1 - latencyObjectivePercentile: the p99 within the "
        "objective)",
    )


class CanaryAnalysis(Section):
    """How make canary-analyze judges a canary environment: the weight steps, how long each step
    bakes, how much data a decision needs, when it aborts, and the metrics
    (generator/canary/README.md)"""

    json_schema_definition: ClassVar[str] = "canaryAnalysis"

    steps: tuple[Annotated[int, Field(ge=1, le=TOTAL_WEIGHT)], ...] = Field(
        (5, 10, 25, 50, TOTAL_WEIGHT),
        min_length=1,
        description=f"The canary weights, increasing, ending at {TOTAL_WEIGHT} (the promotion)",
    )
    warmup_seconds: int = Field(
        120,
        ge=0,
        le=86400,
        description="After the commit that set the weight, time left for the sync and the pods' warm-up: the "
        "analysis window starts after it",
    )
    bake_seconds: int = Field(
        600, ge=1, le=7 * 86400, description="How long a weight runs (after the warm-up) before it may step"
    )
    interval_seconds: int = Field(
        300,
        ge=1,
        le=86400,
        description="The spacing of the looks at the data: an evaluation sees the window up to the last multiple "
        "of it, so each look is counted once in the correction for repeated looks, however often it runs",
    )
    min_requests: int = Field(
        500, ge=1, le=INT32_MAX, description="Predicts each track must have answered in the window to be judged"
    )
    on_insufficient_data: Literal["hold"] = Field(
        "hold", description="What too little data means: hold (never step on missing data)"
    )
    max_hold_seconds: int = Field(
        7200,
        ge=1,
        le=30 * 86400,
        description="A weight held this long past its bake time is aborted (the canary cannot prove itself)",
    )
    failures_to_abort: int = Field(2, ge=1, le=100, description="Failing evaluations in a row that abort")
    alpha: float = Field(
        0.05,
        gt=0,
        le=0.2,
        description="Significance over every look of one step (spent as alpha * 6 / (pi^2 k^2) on the k-th look)",
    )
    traffic_tolerance: float = Field(
        5,
        gt=0,
        le=50,
        description="How far (in percentage points) the canary's observed share of predicts may be from its weight",
    )
    max_scrape_age_seconds: int = Field(
        120, ge=1, le=86400, description="Every target of both tracks must have been scraped this recently"
    )
    metrics: AnalysisMetrics = AnalysisMetrics()


class Exposure(Section):
    """Which Services of this environment may be reached from outside the cluster. The cluster
    refuses the rest at admission (a ValidatingAdmissionPolicy per kind of exposure, generated
    into argocd/admin/): off by default, as the serving path is the Gateway"""

    node_port: bool = Field(False, description="Allow Services of type NodePort")
    load_balancer: bool = Field(False, description="Allow Services of type LoadBalancer")
    external_ips: bool = Field(False, alias="externalIPs", description="Allow Services with spec.externalIPs")


class Environment(Section):
    """One deployment target: an overlay synced by one Argo CD Application."""

    name: Name
    namespace: str
    overlay: str = Field(pattern="^overlays/[a-z0-9][a-z0-9-]*$")
    strategy: StrategyName
    require_digest: bool = False
    train: bool = Field(
        False,
        description="Whether this environment trains missing model versions (its overlay adds the generated "
        "training component of its strategy). The default, false, only serves: its servers pull the model image "
        "each version's card records, by digest; a retrain would produce other bytes than the version reviewed "
        "and pinned.",
    )
    quality_gates: Gates | None = Field(None, alias="gates")
    analysis: CanaryAnalysis | None = Field(
        None,
        description="Automated canary analysis (make canary-analyze); canary environments only. Unset there: the "
        "defaults",
    )
    sync: Sync
    sync_windows: tuple[SyncWindow, ...] = Field(
        (),
        description="Sync windows of the environment's AppProject (production: when a merge may roll out). "
        "None: Argo CD syncs whenever git changes.",
    )
    exposure: Exposure = Exposure()

    @property
    def canary_analysis(self) -> CanaryAnalysis | None:
        """The analysis policy of a canary environment (its defaults when platform.yaml sets none)."""
        if self.strategy is not CANARY:
            return None
        return self.analysis or CanaryAnalysis()

    @property
    def automated(self) -> bool:
        """Argo CD syncs on its own."""
        return self.sync.automated

    @property
    def prune(self) -> bool:
        """Argo CD deletes what git no longer holds."""
        return self.sync.prune

    @property
    def self_heal(self) -> bool:
        """Argo CD undoes changes made in the cluster."""
        return self.sync.self_heal

    @property
    def gates(self) -> tuple[tuple[str, float], ...]:
        """The quality gates that are set, sorted (name as platform.yaml writes it, threshold)."""
        if self.quality_gates is None:
            return ()
        return tuple(sorted(self.quality_gates.model_dump(by_alias=True, exclude_none=True).items()))


class ArgoCD(Section):
    """Where Argo CD runs and where it reads this repository from."""

    namespace: Name
    project: Name
    repo_url: str = Field(pattern=r"^(https://|ssh://|git@)\S+$", alias="repoURL")
    target_revision: str = Field(min_length=1)

    def environment_project(self, env: Environment) -> str:
        """The AppProject that bounds one environment: its namespace, its kinds, its windows."""
        return environment_project(self.project, env.name)

    @property
    def admin_project(self) -> str:
        """The AppProject of the admin Application (AppProjects, namespaces, deployer RBAC)."""
        return f"{self.project}-admin"

    @property
    def apps_project(self) -> str:
        """The AppProject of the app of apps, which deploys Applications only."""
        return f"{self.project}-apps"

    @property
    def previews_project(self) -> str:
        """The AppProject of pull-request previews' workloads (``pr-*`` namespaces, a few kinds)."""
        return f"{self.project}-previews"

    @property
    def guardrails_project(self) -> str:
        """The AppProject of the previews' guardrails (their Namespaces, quotas, limits, policies)."""
        return f"{self.project}-preview-guardrails"


class PreviewQuota(Section):
    """What one preview namespace may use in all (its ResourceQuota; the LimitRange defaults each
    container to the serving resources). GPUs, Jobs, LoadBalancer and NodePort Services: none."""

    cpu: Quantity = Field("2", description="requests.cpu and limits.cpu of the whole namespace")
    memory: Quantity = Field("2Gi", description="requests.memory and limits.memory of the whole namespace")
    pods: int = Field(4, ge=1, le=100, description="Pods at once (a rolling update needs one more than runs)")


class Previews(Section):
    """Pull-request previews (README, "Pull-request previews"): each open pull request labelled
    ``label`` runs its own serve-only copy of the ``pinFrom`` environment in namespace
    ``pr-<number>``, synced by Argo CD's ApplicationSet Pull Request generator from GitHub."""

    owner: str | None = Field(
        None,
        pattern=whole(GITHUB_OWNER),
        description="The GitHub organization or user of this repository; unset: from argocd.repoURL "
        "(.../<owner>/<repo>)",
    )
    repo: str | None = Field(
        None,
        pattern=whole(GITHUB_REPO),
        description="This repository's name on GitHub; unset: from argocd.repoURL",
    )
    api: str = Field(
        "",
        pattern=r"^(https://\S+)?$",
        description="GitHub Enterprise's API URL (https://host/api/v3); empty: github.com",
    )
    token_secret: Name | None = Field(
        None,
        description="A Secret in Argo CD's namespace whose key 'token' the generator calls GitHub with (not "
        "generated: create it by hand); unset: unauthenticated (a public repository, 60 calls an hour)",
    )
    label: str = Field(
        "preview",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
        description="The label a maintainer puts on a pull request to approve its preview (letters, digits, '.', "
        "'_', '-': it goes into the label workflow's API paths as it is)",
    )
    pin_from: Name = Field(
        "staging",
        description="The serve-only environment whose pins (server image, model version and digest) previews run",
    )
    idle_days: int = Field(
        7, ge=1, le=90, description="A pull request without activity this long loses its label (and its preview)"
    )
    requeue_after_seconds: int = Field(
        300, ge=30, le=86400, description="How often the ApplicationSet controller asks GitHub for pull requests"
    )
    quota: PreviewQuota = PreviewQuota()


class Platform(Section):
    """The declarative spec of the ML system that `make synth` turns into Kubernetes manifests."""

    system: System
    images: Images
    models: tuple[Model, ...] = Field(min_length=1)
    model_artifacts: ModelArtifacts
    serving: Serving
    training: Training
    cluster: Cluster = Cluster()
    environments: tuple[Environment, ...] = Field(min_length=1)
    argocd: ArgoCD
    previews: Previews | None = Field(None, description="Pull-request previews; unset: none")
    monitoring: Monitoring = Monitoring(
        availabilityObjective=0.999,
        latencyObjectiveSeconds=0.25,
        latencyObjectivePercentile=0.99,
        prometheusNamespace="monitoring",
    )

    @property
    def name(self) -> str:
        """The system's name."""
        return self.system.name

    @property
    def preview_repository(self) -> tuple[str, str]:
        """The GitHub owner and repository the previews' generator polls: ``previews.owner`` and
        ``repo`` where set, else the last two path segments of ``argocd.repoURL`` (one fact)."""
        derived = repository_path(self.argocd.repo_url)
        previews = self.previews
        owner = previews.owner if previews and previews.owner else derived[0]
        repo = previews.repo if previews and previews.repo else derived[1]
        return owner, repo

    @property
    def description(self) -> str:
        """The system's description."""
        return self.system.description

    @property
    def server_image(self) -> Image:
        """The model server's image."""
        return self.images.server

    @property
    def trainer_image(self) -> Image:
        """The trainer's image."""
        return self.images.trainer

    def artifact_repository(self, model: str) -> str:
        """The image repository of one model's versions (``<modelArtifacts.repository>/<model>``)."""
        return f"{self.model_artifacts.repository}/{model}"


def repository_path(url: str) -> tuple[str, str]:
    """``(owner, repo)`` of a git URL (``https://host/owner/repo.git``, ``git@host:owner/repo``);
    empty strings where it has fewer than two path segments."""
    path = url.split(":", 1)[1] if url.startswith("git@") else urlsplit(url).path
    parts = [part for part in path.removesuffix("/").removesuffix(".git").split("/") if part]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")


def platform_schema() -> dict[str, Any]:
    """platform.schema.json, generated from :class:`Platform` (``make schema`` writes it)."""
    return json_schema(Platform, schema_id=SCHEMA_PATH.name, title="platform.yaml")


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


def _describe(error: jsonschema.ValidationError) -> list[Problem]:
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
    return [
        (
            where,
            f"moved: write it as {MOVED[where]}" if where in MOVED and message.startswith("unknown key") else message,
        )
        for where, message in describe(error)
    ]


def _semantic_problems(platform: Platform, base_dir: Path) -> list[Problem]:
    """Checks a JSON Schema cannot express: orderings, uniqueness, paths on disk."""
    problems: list[Problem] = []
    serving = platform.serving
    if serving.grpc_port == serving.port:
        problems.append(("serving.grpcPort", f"must differ from serving.port ({serving.port})"))
    if serving.metrics_port in (serving.port, serving.grpc_port):
        problems.append(
            (
                "serving.metricsPort",
                f"must differ from serving.port ({serving.port}) and grpcPort ({serving.grpc_port})",
            )
        )
    if serving.max_replicas < serving.min_replicas:
        problems.append(("serving.autoscaling.maxReplicas", f"must be >= minReplicas ({serving.min_replicas})"))
    min_available = serving.pdb.min_available
    if min_available is not None and min_available >= serving.min_replicas:
        problems.append(
            (
                "serving.podDisruptionBudget.minAvailable",
                f"must be < autoscaling.minReplicas ({serving.min_replicas}), or no pod can ever be evicted",
            )
        )
    for section, resources in (("serving", serving.resources), ("training", platform.training.resources)):
        for kind in ("cpu", "memory"):
            request, limit = getattr(resources.requests, kind), getattr(resources.limits, kind)
            if parse_quantity(request) > parse_quantity(limit):
                problems.append((f"{section}.resources.requests.{kind}", f"must be <= limits.{kind} ({limit})"))
    repository = platform.model_artifacts.repository
    host = repository.split("/", 1)[0]
    if "/" not in repository or not ("." in host or ":" in host or host == "localhost"):
        problems.append(
            (
                "modelArtifacts.repository",
                f"{repository!r} names no registry host: start it with one (registry.example.com/ml/models, "
                "host:port/ml/models), as every pull and push of a model image needs",
            )
        )
    modes = list(platform.training.storage.access_modes)
    if "ReadWriteMany" not in modes:
        problems.append(
            (
                "training.storage.accessModes",
                f"{modes} cannot work: the training Job writes the model store while server pods on "
                "other nodes read it; use ReadWriteMany (an NFS-like storage class)",
            )
        )
    problems += _duplicates("models", "name", [model.name for model in platform.models])
    for field in ("name", "namespace", "overlay"):
        problems += _duplicates("environments", field, [getattr(env, field) for env in platform.environments])
    for index, env in enumerate(platform.environments):
        if env.name in RESERVED_PROJECT_SUFFIXES:
            problems.append(
                (
                    f"environments[{index}].name",
                    f"{env.name!r} is taken: Argo CD projects <argocd.project>-{env.name} are the "
                    f"{RESERVED_PROJECT_SUFFIXES[env.name]} project",
                )
            )
        if env.namespace == platform.argocd.namespace:
            problems.append(
                (f"environments[{index}].namespace", f"{env.namespace!r} is Argo CD's namespace (argocd.namespace)")
            )
    for index, env in enumerate(platform.environments):
        problems += _environment_problems(f"environments[{index}]", env, base_dir)
    return problems + _preview_problems(platform)


def _preview_problems(platform: Platform) -> list[Problem]:
    """Previews copy one environment that exists and only serves (a preview never trains)."""
    previews = platform.previews
    if previews is None:
        return []
    owner, repo = platform.preview_repository
    if not (matches(GITHUB_OWNER, owner) and matches(GITHUB_REPO, repo)):
        return [
            (
                "previews.owner",
                f"argocd.repoURL {platform.argocd.repo_url!r} names no GitHub owner/repository ({owner!r}, "
                f"{repo!r}): set previews.owner and previews.repo",
            )
        ]
    envs = {env.name: env for env in platform.environments}
    pinned = envs.get(previews.pin_from)
    if pinned is None:
        return [("previews.pinFrom", f"{previews.pin_from!r} is not an environment ({', '.join(envs)})")]
    if pinned.train:
        return [("previews.pinFrom", f"{previews.pin_from!r} trains (train: true); a preview only serves")]
    return []


def _duplicates(list_name: str, field: str, values: list[str]) -> list[Problem]:
    """A line for each value of a list's ``field`` that an earlier item already has."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            problems.append(
                (f"{list_name}[{index}].{field}", f"duplicate {field} {value!r} (also {list_name}[{seen[value]}])")
            )
        seen.setdefault(value, index)
    return problems


def _environment_problems(where: str, env: Environment, base_dir: Path) -> list[Problem]:
    """An environment's namespace, overlay directory and sync options."""
    problems: list[Problem] = []
    if not (matches(DNS_LABEL, env.namespace) and len(env.namespace) <= DNS_LABEL_MAX):
        problems.append(
            (
                f"{where}.namespace",
                f"{env.namespace!r} is not a DNS-1123 label (lower-case letters, digits and '-', at most "
                f"{DNS_LABEL_MAX})",
            )
        )
    kustomization = base_dir / env.overlay / "kustomization.yaml"
    if env.overlay in RESERVED_OVERLAYS:
        problems.append((f"{where}.overlay", f"{env.overlay!r} is generated; an environment needs its own overlay"))
    elif not kustomization.is_file():
        state = "is not a regular file" if kustomization.exists() else "does not exist"
        problems.append((f"{where}.overlay", f"{env.overlay}/kustomization.yaml {state}"))
    if env.self_heal and not env.automated:
        problems.append((f"{where}.sync.selfHeal", "needs automated: true (Argo CD ignores it otherwise)"))
    if env.prune and not env.automated:
        problems.append((f"{where}.sync.prune", "needs automated: true (Argo CD ignores it otherwise)"))
    if env.analysis is not None:
        problems += _analysis_problems(f"{where}.analysis", env)
    return problems


def _analysis_problems(where: str, env: Environment) -> list[Problem]:
    """A canary analysis policy: on a canary environment, its steps increasing up to 100."""
    if env.strategy is not CANARY:
        return [(where, f"only a canary environment has a canary analysis ({env.name} is {env.strategy})")]
    steps = list(env.analysis.steps) if env.analysis else []
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        return [(f"{where}.steps", f"{steps} must increase strictly")]
    if steps[-1:] != [TOTAL_WEIGHT]:
        return [(f"{where}.steps", f"{steps} must end at {TOTAL_WEIGHT} (the promotion)")]
    return _query_problems(f"{where}.metrics", env.analysis.metrics if env.analysis else AnalysisMetrics())


#: The placeholders a metric's query may use (generator/canary/queries.py fills them in).
QUERY_PLACEHOLDERS = frozenset({"namespace", "model", "track", "window"})


def _query_problems(where: str, metrics: AnalysisMetrics) -> list[Problem]:
    """Each overriding query uses only the known placeholders, and a query for each count."""
    problems: list[Problem] = []
    for name, metric in metrics:
        key = f"{where}.{AnalysisMetrics.model_fields[name].alias}"
        if bool(metric.bad_query) != bool(metric.total_query):
            problems.append((key, "give both badQuery and totalQuery, or neither (a share needs both counts)"))
        for field in ("bad_query", "total_query"):
            template = Template(getattr(metric, field))
            unknown = sorted(set(template.get_identifiers()) - QUERY_PLACEHOLDERS)
            if not template.is_valid() or unknown:
                shown_names = ", ".join(f"${p}" for p in sorted(QUERY_PLACEHOLDERS))
                alias = AnalysisMetric.model_fields[field].alias
                problems.append((f"{key}.{alias}", f"may use only the placeholders {shown_names}"))
    return problems


def _model_problems(error: ValidationError) -> list[Problem]:
    """What the models refuse that the schema let through (a schema older than the models: make
    schema), one line per problem like the schema's."""
    return [(dotted(list(e["loc"])), e["msg"]) for e in error.errors(include_url=False)]


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
        try:
            platform = Platform.model_validate(data)
        except ValidationError as exc:
            problems = _model_problems(exc)
        else:
            problems = _semantic_problems(platform, path.parent)
    if problems:
        raise ConfigError([f"{label}: {where}: {message}" for where, message in dict.fromkeys(problems)])
    return platform
