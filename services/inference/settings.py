"""Model server settings: every environment variable declared once, with its bounds and meaning.

One ``pydantic-settings`` class reads and validates the environment; the README's settings table
is generated from the same declarations (``python -m services.inference.settings`` prints it, a
test keeps the README equal to it). This module imports nothing heavy: gunicorn's master reads it
from ``gunicorn.conf.py`` before forking, and the master must never load a model runtime.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from services.artifacts import DIGEST_PATTERN
from services.contract import GRPC_PORT, MAX_SERVER_WORKERS, METRICS_PORT, NAME_MAX, is_name
from services.values import CONTROL, fitting_path, shown

# The directory gunicorn's workers share (gunicorn.conf.py sets it) and the file in it that asks
# every worker to start draining (``python -m services.inference.drain``, a preStop hook).
WORKER_STATE_DIR_ENV = "INFERENCE_WORKER_STATE_DIR"
DRAIN_MARKER = "draining"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """An environment variable has a value the server cannot use; the message names it."""


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lowered(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        raw = value.strip().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ValueError("is not a boolean (use true or false)")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _model_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"must be a DNS-1123 label: lowercase letters, digits and '-' (max {NAME_MAX})")
    return value


_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME_RE.fullmatch(value):
            raise ValueError("must be an IPv4 or IPv6 address or a host name") from None
    return value


def _digest(value: str) -> str:
    if not DIGEST_PATTERN.fullmatch(value):
        raise ValueError("must be sha256:<64 lowercase hex digits>, the version digest its model card gives")
    return value


def bind_address(host: str, port: int) -> str:
    """``host:port`` as gunicorn binds it, with an IPv6 address in brackets (``[::1]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _input_shape(value: tuple[int, ...]) -> tuple[int, ...]:
    if value and any(d < 1 for d in value):
        raise ValueError("must list positive dimensions, without the batch dimension, e.g. [28, 28, 1]")
    return value


Text = Annotated[str, BeforeValidator(_stripped)]
Choice = BeforeValidator(_lowered)
Bool = Annotated[bool, BeforeValidator(_boolean)]
Seconds = Annotated[float, BeforeValidator(_stripped), AfterValidator(_finite)]
Int = Annotated[int, BeforeValidator(_stripped)]


def _env(name: str, description: str) -> dict[str, Any]:
    """Field arguments of one setting: its environment variable and its README description."""
    return {"validation_alias": name, "description": description}


class Settings(BaseSettings):
    """Every knob of the model server; build it with :meth:`from_env`."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True, env_ignore_empty=True)

    port: Annotated[Int, Ge(1), Le(65535)] = Field(
        8080, **_env("PORT", "TCP port of the REST API and the health routes (the container port `http`)")
    )
    metrics_port: Annotated[Int, Ge(1), Le(65535)] = Field(
        METRICS_PORT,
        **_env(
            "METRICS_PORT",
            "TCP port that serves `/metrics` and nothing else (the container port `metrics`); the serving ports "
            "answer `/metrics` with 404, so a route or a NetworkPolicy can expose one without the other",
        ),
    )
    grpc_port: Annotated[Int, Ge(0), Le(65535)] = Field(
        GRPC_PORT,
        **_env(
            "GRPC_PORT",
            "TCP port of the TF Serving gRPC API and `grpc.health.v1` (the container port `grpc`); `0` turns gRPC off",
        ),
    )
    predict_response_tensor_serialization: Annotated[Literal["as_proto_field", "as_proto_content"], Choice] = Field(
        "as_proto_field",
        **_env(
            "PREDICT_RESPONSE_TENSOR_SERIALIZATION",
            "How gRPC `Predict` packs its output tensors, as TF Serving's option of that name: `as_proto_field`, "
            "TF Serving's default, in the typed fields (`float_val`) that most clients read; `as_proto_content` "
            "in `tensor_content` bytes (less work per answer; `tf.make_ndarray` reads both)",
        ),
    )
    grpc_max_concurrent_rpcs: Annotated[Int, Ge(1), Le(100_000)] = Field(
        16,
        **_env(
            "GRPC_MAX_CONCURRENT_RPCS",
            "Most gRPC calls one worker holds at once, running or queued for its `THREADS`; more are refused "
            "with RESOURCE_EXHAUSTED at once (each may hold a message of up to `MAX_BODY_BYTES`)",
        ),
    )
    grpc_keepalive_seconds: Annotated[Seconds, Ge(1), Le(86400)] = Field(
        60.0,
        **_env(
            "GRPC_KEEPALIVE_SECONDS",
            "Seconds between the server's HTTP/2 keepalive pings on a gRPC connection (gRPC's `keepalive_time`), "
            "so a dead client's connection is noticed and closed",
        ),
    )
    grpc_keepalive_timeout_seconds: Annotated[Seconds, Ge(1), Le(3600)] = Field(
        20.0,
        **_env(
            "GRPC_KEEPALIVE_TIMEOUT_SECONDS",
            "Seconds a keepalive ping waits for its answer before the connection is closed",
        ),
    )
    grpc_max_connection_age_seconds: Annotated[Seconds, Ge(1), Le(86400)] = Field(
        300.0,
        **_env(
            "GRPC_MAX_CONNECTION_AGE_SECONDS",
            "Seconds a gRPC connection lives before the server sends GOAWAY (clients reconnect, so new pods and "
            "workers get their share of long-lived channels)",
        ),
    )
    grpc_max_connection_age_grace_seconds: Annotated[Seconds, Ge(0), Le(3600)] = Field(
        30.0,
        **_env(
            "GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS",
            "Seconds the calls in flight on an aged connection get to finish after its GOAWAY",
        ),
    )
    grpc_reflection: Bool = Field(
        False,
        **_env(
            "GRPC_REFLECTION",
            "`true` serves gRPC server reflection (`grpcurl list`): it describes every service to any caller, "
            "so it is off unless turned on",
        ),
    )
    host: Annotated[Text, AfterValidator(_host)] = Field(
        "0.0.0.0", **_env("HOST", "Bind address of every port: an IPv4 or IPv6 address, or a host name")
    )
    workers: Annotated[Int, Ge(1), Le(MAX_SERVER_WORKERS)] = Field(
        1, **_env("WORKERS", "gunicorn worker processes; each loads its own copy of the model and serves both APIs")
    )
    threads: Annotated[Int, Ge(1), Le(256)] = Field(
        4,
        **_env(
            "THREADS",
            "Request threads per worker for REST, and as many for gRPC (also the LiteRT interpreter pool size)",
        ),
    )
    graceful_timeout: Annotated[Seconds, Ge(0), Le(3600)] = Field(
        20.0, **_env("GRACEFUL_TIMEOUT", "Seconds a worker gets to finish requests in flight after SIGTERM")
    )
    worker_timeout: Annotated[Seconds, Ge(1), Le(86400)] = Field(
        30.0, **_env("WORKER_TIMEOUT", "gunicorn worker heartbeat timeout (seconds)")
    )
    keepalive: Annotated[Seconds, Ge(0), Le(3600)] = Field(
        5.0, **_env("KEEPALIVE", "Seconds an idle keep-alive connection stays open")
    )
    header_timeout: Annotated[Seconds, Ge(0.1), Le(3600)] = Field(
        10.0,
        **_env(
            "REQUEST_HEADER_TIMEOUT",
            "Seconds a client gets to send a request's headers once it has started (else 408 and close)",
        ),
    )
    body_timeout: Annotated[Seconds, Ge(0.1), Le(3600)] = Field(
        30.0,
        **_env("REQUEST_BODY_TIMEOUT", "Seconds a client gets to send a request's body after its headers (else 408)"),
    )
    drain_delay_seconds: Annotated[Seconds, Ge(0), Le(3600)] = Field(
        0.0,
        **_env(
            "DRAIN_DELAY_SECONDS",
            "After SIGTERM, keep accepting requests this long with readiness already false (lets endpoints "
            "update); must fit in `GRACEFUL_TIMEOUT` and the pod's `terminationGracePeriodSeconds`",
        ),
    )
    log_level: Annotated[Literal["debug", "info", "warning", "error", "critical"], Choice] = Field(
        "info", **_env("LOG_LEVEL", "Log level")
    )
    log_format: Annotated[Literal["text", "json"], Choice] = Field(
        "text",
        **_env(
            "LOG_FORMAT",
            "`json` writes gunicorn's and the app's logs as one JSON object per line (`time`, `level`, `logger`, "
            "`pid`, `message`)",
        ),
    )
    access_log: Bool = Field(False, **_env("ACCESS_LOG", "`true` writes one access-log line per request to stdout"))
    model_name: Annotated[Text, AfterValidator(_model_name)] = Field(
        "mnist",
        **_env(
            "MODEL_NAME",
            "Model name in the URLs and the directory under `MODEL_BASE_PATH`: a DNS-1123 label, as in `platform.yaml`",
        ),
    )
    model_base_path: Annotated[Text, AfterValidator(fitting_path)] = Field(
        "/models", **_env("MODEL_BASE_PATH", "Root holding `<MODEL_NAME>/<version>/`")
    )
    model_version: Annotated[Int, Ge(1), Le(999_999_999)] | None = Field(
        None, **_env("MODEL_VERSION", "Pin a version; empty serves the newest version that loads")
    )
    model_version_path: Annotated[Text, AfterValidator(fitting_path)] | None = Field(
        None,
        **_env(
            "MODEL_VERSION_PATH",
            "The files of version `MODEL_VERSION` alone, read instead of `MODEL_BASE_PATH`/`<MODEL_NAME>`/`<version>`: "
            "the version's OCI image mounted as an image volume (its files are under `/model` in the image). "
            "Needs `MODEL_VERSION`, which the files' `metadata.json` must name",
        ),
    )
    model_digest: Annotated[Text, AfterValidator(_digest)] | None = Field(
        None,
        **_env(
            "MODEL_DIGEST",
            "`sha256:<64 hex>`: serve only a version whose files have this digest (`services/artifacts.py`, the "
            "model card's); a version that differs is refused, the previous one keeps serving. Empty: not checked",
        ),
    )
    model_version_labels: dict[str, Annotated[int, Ge(1), Le(999_999_999)]] = Field(
        default_factory=dict,
        **_env(
            "MODEL_VERSION_LABELS",
            'JSON object of TF Serving version labels for gRPC `model_spec.version_label`, e.g. `{"stable": 3}`',
        ),
    )
    model_backend: Annotated[Literal["litert", "tensorflow"], Choice] = Field(
        "litert",
        **_env("MODEL_BACKEND", "`litert` (`model.tflite`) or `tensorflow` (the SavedModel; needs TensorFlow)"),
    )
    model_input_shape: Annotated[tuple[int, ...], AfterValidator(_input_shape)] = Field(
        (),
        **_env(
            "MODEL_INPUT_SHAPE",
            "JSON list: the input shape each instance must have (`platform.yaml` `inputShape`); a version whose "
            "model disagrees fails to load. Empty: not checked",
        ),
    )
    model_classes: tuple[str, ...] = Field(
        (),
        **_env(
            "MODEL_CLASSES",
            "JSON list of the output classes' names (`platform.yaml` `classes`), shown by the metadata route",
        ),
    )
    model_poll_seconds: Annotated[Seconds, Ge(0), Le(86400)] = Field(
        30.0,
        **_env("MODEL_POLL_SECONDS", "How often to look for new versions; `0` disables polling after the first load"),
    )
    max_batch_size: Annotated[Int, Ge(1), Le(1_000_000)] = Field(
        64, **_env("MAX_BATCH_SIZE", "Most instances in one request (more gives 413, or INVALID_ARGUMENT on gRPC)")
    )
    max_body_bytes: Annotated[Int, Ge(1024), Le(1 << 30)] = Field(
        8 * 1024 * 1024,
        **_env(
            "MAX_BODY_BYTES",
            "Largest request body or gRPC message (8 MiB; more gives 413, or RESOURCE_EXHAUSTED on gRPC)",
        ),
    )
    intra_op_threads: Annotated[Int, Ge(1), Le(256)] = Field(
        1, **_env("INTRA_OP_THREADS", "Threads inside one inference (LiteRT `num_threads`, TensorFlow intra-op)")
    )
    inter_op_threads: Annotated[Int, Ge(1), Le(256)] = Field(
        1, **_env("INTER_OP_THREADS", "TensorFlow inter-op threads (TensorFlow backend only)")
    )

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        ports = {"PORT": self.port, "METRICS_PORT": self.metrics_port, "GRPC_PORT": self.grpc_port}
        taken: dict[int, str] = {}
        for name, number in ports.items():
            if number and number in taken:
                raise ValueError(f"{name}={number}: is also {taken[number]}; every port of the server must differ")
            taken[number] = name
        return self

    @model_validator(mode="after")
    def _version_path_names_a_version(self) -> Settings:
        if self.model_version_path is not None and self.model_version is None:
            raise ValueError(
                f"MODEL_VERSION_PATH={shown(self.model_version_path)}: holds one version's files, so MODEL_VERSION "
                "must say which version it is"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the process environment (or the mapping given to :meth:`from_env`): no files."""
        return (_MappingEnvSource(settings_cls),)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raises :class:`ConfigError` naming every bad variable."""
        environ = os.environ if env is None else env
        for field in cls.model_fields.values():
            raw = environ.get(str(field.validation_alias), "")
            if CONTROL.search(raw):  # no setting is multi-line text
                raise ConfigError(f"{field.validation_alias}={shown(raw)}: holds a control character")
        token = _ENVIRON.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(_describe(exc, os.environ if env is None else env)) from None
        except SettingsError as exc:  # a JSON-valued variable that is not JSON
            match = re.search(r'field "([^"]+)"', str(exc))
            name = Settings.model_fields[match[1]].validation_alias if match else "?"
            raw = (os.environ if env is None else env).get(str(name), "")
            raise ConfigError(f"{name}={shown(raw)}: is not valid JSON") from None
        finally:
            _ENVIRON.reset(token)


_ENVIRON: ContextVar[Mapping[str, str]] = ContextVar("settings_environ")


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading the mapping :meth:`Settings.from_env` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(_ENVIRON.get(os.environ), True, self.env_ignore_empty, self.env_parse_none_str)


def _describe(exc: ValidationError, env: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # a rule across settings: its message names them
            problems.append(message)
            continue
        field = str(error["loc"][0])
        info = Settings.model_fields.get(field)
        name = info.validation_alias if info is not None else field
        problems.append(f"{name}={shown(env.get(str(name), ''))}: {message}")
    return "; ".join(problems)


def _default_text(info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    if default is None or default in ((), {}):
        return "empty"
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def _bounds_text(info: FieldInfo) -> str:
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    if info.annotation is bool:
        return "`true`, `false`"
    if info.annotation in (dict, tuple) or getattr(info.annotation, "__origin__", None) in (dict, tuple):
        return "JSON"
    choices = getattr(info.annotation, "__args__", ())
    if choices and all(isinstance(c, str) for c in choices):
        return ", ".join(f"`{c}`" for c in choices)
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"≥ {low}"
    return ""


def settings_table() -> str:
    """The README's settings table, generated from the declarations above."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for info in Settings.model_fields.values():
        rows.append(
            f"| `{info.validation_alias}` | {_default_text(info)} | {_bounds_text(info)} | {info.description} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_table())
