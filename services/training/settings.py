"""The trainer's settings, declared once: type, default, bounds, flag and environment name.

:class:`TrainSettings` is a ``pydantic-settings`` model. Each field's ``validation_alias`` is its
environment variable (read case-sensitively, empty means unset), its ``flag`` (in
``json_schema_extra``) the command-line option that overrides it; fields without a flag are set
by the platform (Kubernetes, the local launcher), never typed by hand. :func:`parse_args` builds
the ``argparse`` parser from the same declaration, and :func:`markdown_table` renders the table
in ``services/training/README.md`` (a test keeps the two equal:
``python -m services.training.settings`` prints it).

Bad values exit 2 with one line naming the flag or variable and the rule it broke.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from services.contract import MAX_TRAINING_WORKERS, MODEL_IMAGE_ENV, NAME_MAX, TRAINING_WORKER_PORT, is_name
from services.values import fitting_path, shown, without_control

PROG = "python -m services.training.train"
LOG_LEVELS = ("debug", "info", "warning", "error")
UINT32_MAX = 2**32 - 1
INT64_MAX = 2**63 - 1


def _flag(flag: str, metavar: str | None = None, shown: str | None = None) -> dict[str, Any]:
    """The ``json_schema_extra`` of a field that has a command-line flag."""
    return {"flag": flag, "metavar": metavar, "shown_default": shown}


class TFTask(BaseModel):
    """``TF_CONFIG``'s ``task``: which member of the cluster this process is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["worker"]
    index: int = Field(ge=0, lt=MAX_TRAINING_WORKERS)


class TFConfig(BaseModel):
    """``TF_CONFIG`` as MultiWorkerMirroredStrategy reads it: workers only (worker 0 is the chief)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cluster: dict[Literal["worker"], list[str]]
    task: TFTask

    @model_validator(mode="after")
    def _task_in_cluster(self) -> TFConfig:
        workers = self.cluster.get("worker", [])
        if not 1 <= len(workers) <= MAX_TRAINING_WORKERS:
            raise ValueError(f"cluster.worker must list 1 to {MAX_TRAINING_WORKERS} host:port addresses")
        if any(not isinstance(a, str) or a.rpartition(":")[0] == "" for a in workers):
            raise ValueError("every cluster.worker entry must be host:port")
        if self.task.index >= len(workers):
            raise ValueError(f"task.index {self.task.index} is not one of the {len(workers)} workers")
        return self


class TrainSettings(BaseSettings):
    """Every knob of one training run (flags override environment variables, which override defaults)."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    model_root: Path = Field(
        Path("/models"),
        validation_alias="MODEL_ROOT",
        description="Model store root",
        json_schema_extra=_flag("--model-root", "DIR"),
    )
    model_name: str = Field(
        "mnist",
        validation_alias="MODEL_NAME",
        description=f"Model directory name (a DNS-1123 label: lowercase, digits, `-`; at most {NAME_MAX})",
        json_schema_extra=_flag("--model-name", "NAME"),
    )
    version: int | None = Field(
        None,
        ge=1,
        le=INT64_MAX,
        validation_alias="MODEL_VERSION",
        description="Version to publish; versions are immutable",
        json_schema_extra=_flag("--version", "N", "next integer"),
    )
    skip_existing: bool = Field(
        False,
        validation_alias="SKIP_EXISTING",
        description="If the version is already published, log it and exit 0 without training "
        "(the Job re-runs on every Argo CD sync)",
        json_schema_extra=_flag("--skip-existing", None, "off"),
    )
    data: str | None = Field(
        None,
        validation_alias="TRAINING_DATA",
        description="MNIST `.npz` (`x_train`, `y_train`[, `x_test`, `y_test`] as in Keras' `mnist.npz`, or `x`, `y`) "
        "or a directory of IDX files (`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, "
        "optional `t10k-*`)",
        json_schema_extra=_flag("--data", "PATH", "bundled digits"),
    )
    epochs: int = Field(
        15,
        ge=1,
        le=10_000,
        validation_alias="TRAINING_EPOCHS",
        description="Epochs",
        json_schema_extra=_flag("--epochs", "N"),
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=65_536,
        validation_alias="TRAINING_BATCH_SIZE",
        description="Global batch size: split across all workers' replicas, so one step sees the same examples "
        "whatever the number of workers",
        json_schema_extra=_flag("--batch-size", "N"),
    )
    learning_rate: float = Field(
        1e-3,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        validation_alias="LEARNING_RATE",
        description="Adam learning rate",
        json_schema_extra=_flag("--learning-rate", "X"),
    )
    seed: int = Field(
        42,
        ge=0,
        le=UINT32_MAX,
        validation_alias="TRAINING_SEED",
        description="Seed of the split, the shuffling and the initial weights",
        json_schema_extra=_flag("--seed", "N"),
    )
    holdout_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        validation_alias="HOLDOUT_FRACTION",
        description="Stratified held-out share when the data has no test split",
        json_schema_extra=_flag("--holdout-fraction", "X"),
    )
    max_examples: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        validation_alias="TRAINING_MAX_EXAMPLES",
        description="Train on at most N examples (quick runs)",
        json_schema_extra=_flag("--max-examples", "N", "0 (all)"),
    )
    min_accuracy: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        validation_alias="MIN_ACCURACY",
        description="Quality gate: do not publish below this held-out accuracy",
        json_schema_extra=_flag("--min-accuracy", "X", "0 (off)"),
    )
    threads: int = Field(
        0,
        ge=0,
        le=1024,
        validation_alias="TRAINING_THREADS",
        description="TensorFlow intra-op threads",
        json_schema_extra=_flag("--threads", "N", "0 (all cores)"),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info",
        validation_alias="LOG_LEVEL",
        description="`debug`, `info`, `warning`, `error`",
        json_schema_extra=_flag("--log-level", "LEVEL"),
    )
    # --- the model image (services/model_image.py) -----------------------------------------------
    artifact_repository: str | None = Field(
        None,
        max_length=255,
        validation_alias="MODEL_ARTIFACT_REPOSITORY",
        description="After publishing, push the version as its model image to `<repository>:<version>` "
        "(credentials: `REGISTRY_AUTH_FILE`); a version already published is pushed again (the same digest)",
        json_schema_extra=_flag("--artifact-repository", "REPO", "no push"),
    )
    model_image: str | None = Field(
        None,
        max_length=255,
        validation_alias=MODEL_IMAGE_ENV,
        description="The version's model image by digest, as git pins it: a version the store lacks is fetched "
        "from it, never trained again (a retrain gives other bytes); unset or not pinned: train",
        json_schema_extra=_flag("--model-image", "REF", "train"),
    )
    registry_plain_http: bool = Field(
        False,
        validation_alias="MODEL_REGISTRY_PLAIN_HTTP",
        description="Talk HTTP to the registry (one without TLS, for tests; never in production)",
        json_schema_extra=_flag("--registry-plain-http", None, "off"),
    )
    # --- provenance, written into metadata.json (the model card's data) -----------------------------
    code_revision: str | None = Field(
        None,
        validation_alias="CODE_REVISION",
        description="The source revision of this trainer (set by `make images` in the trainer image); "
        "unset or `unknown`: `git rev-parse HEAD` of the checkout, else null",
        json_schema_extra={"shown_default": "unset"},
    )
    trainer_image: str | None = Field(
        None,
        validation_alias="TRAINER_IMAGE",
        description="The image reference this run executes in (`repository:tag` or `repository@sha256:...`), "
        "recorded as `trainer_image`; unset: null (a local run)",
        json_schema_extra={"shown_default": "unset"},
    )
    # --- distributed training (MultiWorkerMirroredStrategy) ---------------------------------------
    workers: int = Field(
        1,
        ge=1,
        le=MAX_TRAINING_WORKERS,
        validation_alias="TRAINING_WORKERS",
        description="Workers training together with MultiWorkerMirroredStrategy; more than 1 needs `TF_CONFIG` "
        "or the Indexed Job variables below",
        json_schema_extra=_flag("--workers", "N"),
    )
    peer_timeout: int = Field(
        600,
        ge=5,
        le=86_400,
        validation_alias="TRAINING_PEER_TIMEOUT",
        description="Seconds a worker waits for its peers (to join at start, or for the next step) before it fails "
        "with exit code 4",
        json_schema_extra=_flag("--peer-timeout", "SECONDS"),
    )
    tf_config: TFConfig | None = Field(
        None,
        validation_alias="TF_CONFIG",
        description="TensorFlow's cluster description (JSON: `cluster.worker` addresses, `task.index`); "
        "set by the local launcher, or by hand",
        json_schema_extra={"shown_default": "unset"},
    )
    job_completion_index: int | None = Field(
        None,
        ge=0,
        lt=MAX_TRAINING_WORKERS,
        validation_alias="JOB_COMPLETION_INDEX",
        description="This worker's index, set by Kubernetes in an Indexed Job",
        json_schema_extra={"shown_default": "unset"},
    )
    job_name: str | None = Field(
        None,
        validation_alias="TRAINING_JOB_NAME",
        description="The Job's name (the downward API's `batch.kubernetes.io/job-name` label): "
        "pod hostnames are `<job>-<index>`",
        json_schema_extra={"shown_default": "unset"},
    )
    worker_service: str | None = Field(
        None,
        validation_alias="TRAINING_WORKER_SERVICE",
        description="The headless Service that is the pods' subdomain: worker addresses are "
        "`<job>-<index>.<service>:<port>`",
        json_schema_extra={"shown_default": "unset"},
    )
    worker_port: int = Field(
        TRAINING_WORKER_PORT,
        ge=1,
        le=65_535,
        validation_alias="TRAINING_WORKER_PORT",
        description="The port every worker listens on in an Indexed Job",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("code_revision", "trainer_image", "artifact_repository", "model_image", mode="before")
    @classmethod
    def _one_word(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if any(ord(c) < 0x20 or ord(c) == 0x7F or c.isspace() for c in value):
                raise ValueError("must be one word without whitespace or control characters")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not is_name(value):
            raise ValueError(
                f"use a DNS-1123 label: lowercase letters, digits and '-' (at most {NAME_MAX} characters, "
                "starting and ending with a letter or digit)"
            )
        return value

    @field_validator(
        "model_root",
        "model_name",
        "data",
        "log_level",
        "job_name",
        "worker_service",
        "artifact_repository",
        "model_image",
        mode="before",
    )
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        return without_control(value) if isinstance(value, str) else value

    @field_validator("model_root", "data", mode="before")
    @classmethod
    def _fitting_path(cls, value: Any) -> Any:
        return fitting_path(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cluster_is_complete(self) -> TrainSettings:
        if self.tf_config is not None:
            size = len(self.tf_config.cluster["worker"])
            if "workers" in self.model_fields_set and self.workers != size:
                raise ValueError(f"--workers/TRAINING_WORKERS is {self.workers} but TF_CONFIG lists {size} workers")
        elif self.workers > 1:
            missing = [
                env
                for env, value in (
                    ("JOB_COMPLETION_INDEX", self.job_completion_index),
                    ("TRAINING_JOB_NAME", self.job_name),
                    ("TRAINING_WORKER_SERVICE", self.worker_service),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"--workers/TRAINING_WORKERS is {self.workers} but neither TF_CONFIG nor the Indexed Job "
                    "variables are set "
                    f"(missing {', '.join(missing)}); run several local workers with `make train WORKERS=N`"
                )
            assert self.job_completion_index is not None  # in `missing` otherwise
            if self.job_completion_index >= self.workers:
                raise ValueError(
                    f"JOB_COMPLETION_INDEX {self.job_completion_index} is not below TRAINING_WORKERS ({self.workers})"
                )
        if self.batch_size < self.cluster_size:
            raise ValueError(
                f"--batch-size/TRAINING_BATCH_SIZE {self.batch_size} is smaller than the {self.cluster_size} "
                "workers it is split across"
            )
        return self

    # --- the cluster this process belongs to -------------------------------------------------------

    @property
    def cluster_size(self) -> int:
        """How many workers train together (1: no distribution)."""
        return len(self.tf_config.cluster["worker"]) if self.tf_config is not None else self.workers

    def cluster(self) -> TFConfig | None:
        """The TF_CONFIG of a multi-worker run (given, or built from the Indexed Job's stable
        hostnames ``<job>-<index>.<service>:<port>``); None for a single worker."""
        if self.tf_config is not None:
            return self.tf_config if self.cluster_size > 1 else None
        if self.workers == 1:
            return None
        return TFConfig(
            cluster={
                "worker": [f"{self.job_name}-{i}.{self.worker_service}:{self.worker_port}" for i in range(self.workers)]
            },
            task=TFTask(type="worker", index=self.job_completion_index),
        )


# --- command line ---------------------------------------------------------------------------------


def _extra(name: str) -> dict[str, Any]:
    extra = TrainSettings.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def flag_fields() -> dict[str, str]:
    """Field name -> command-line flag, in declaration order."""
    return {name: _extra(name)["flag"] for name in TrainSettings.model_fields if _extra(name).get("flag")}


def env_name(name: str) -> str:
    """The environment variable of a field."""
    return str(TrainSettings.model_fields[name].validation_alias)


def build_parser() -> argparse.ArgumentParser:
    """The CLI, one option per flagged field (values are checked by the model, not argparse)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the MNIST CNN and publish <model-root>/<model-name>/<version>/ "
        "(SavedModel, model.tflite, metadata.json) atomically.",
        epilog="Exit codes: 0 published or skipped, 1 unexpected failure, 2 bad usage/data/model store, "
        "3 below --min-accuracy (not published), 4 a distributed peer was lost or never joined, 143 terminated.",
    )
    for name, flag in flag_fields().items():
        field = TrainSettings.model_fields[name]
        help_text = f"{field.description} (env {env_name(name)}, default {_shown_default(name)})"
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, metavar=_extra(name).get("metavar"), default=None, help=help_text)
    return parser


def _where(loc: tuple, given: dict[str, str], value: Any) -> str | None:
    """Name the flag or variable (and its value) a validation error is about (None: the message does)."""
    if not loc:
        return None
    name = str(loc[0])
    for field, flag in flag_fields().items():
        if name in (field, env_name(field)) and field in given:
            return f"{flag} {shown(given[field], quoted=False)}"
    for field in TrainSettings.model_fields:
        if name in (field, env_name(field)):
            if len(loc) > 1 or not isinstance(value, str):
                return env_name(field)
            return f"{env_name(field)}={shown(value)}"
    return name


def parse_args(argv: list[str] | None = None) -> TrainSettings:
    """Flags (which win) over environment variables over defaults; exits 2 naming a bad value."""
    parser = build_parser()
    namespace = vars(parser.parse_args(argv))
    given = {name: value for name, value in namespace.items() if value is not None}
    try:
        return TrainSettings(**given)
    except SettingsError as exc:  # a complex value (TF_CONFIG) that is not JSON
        parser.error(f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = _where(tuple(error["loc"]), {k: str(v) for k, v in given.items()}, error.get("input"))
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        parser.error("; ".join(problems))


# --- documentation ----------------------------------------------------------------------------------


def _shown_default(name: str) -> str:
    shown = _extra(name).get("shown_default")
    if shown:
        return shown
    default = TrainSettings.model_fields[name].default
    return str(default)


def _bounds(name: str, symbol: str) -> str:
    low = high = ""
    for rule in TrainSettings.model_fields[name].metadata:
        if isinstance(rule, Ge):
            low = f"{rule.ge} ≤"
        elif isinstance(rule, Gt):
            low = f"{rule.gt} <"
        elif isinstance(rule, Le):
            high = f"≤ {rule.le}"
        elif isinstance(rule, Lt):
            high = f"< {rule.lt}"
    if not (low or high):
        return ""
    return " ".join(part for part in (low, symbol, high) if part)


def markdown_table() -> str:
    """The README's settings table, rendered from the declaration."""
    rows = ["| Flag | Env | Default | Bounds | Meaning |", "|---|---|---|---|---|"]
    for name, field in TrainSettings.model_fields.items():
        flag = _extra(name).get("flag")
        metavar = _extra(name).get("metavar")
        flag_cell = f"`{flag}{' ' + metavar if metavar else ''}`" if flag else "—"
        env_cell = f"`{env_name(name)}`" + ("=true" if field.annotation is bool else "")
        default = _shown_default(name)
        default_cell = f"`{default}`" if default == str(field.default) and field.default is not None else default
        bounds = _bounds(name, "N" if field.annotation in (int, int | None) else "X")
        rows.append(f"| {flag_cell} | {env_cell} | {default_cell} | {bounds} | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
