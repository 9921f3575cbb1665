"""Model server settings, read only from environment variables (see README.md for the table).

This module imports nothing heavy: gunicorn's master process reads it from ``gunicorn.conf.py``
before forking, and the master must never load a model runtime.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

BACKENDS = ("litert", "tensorflow")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62})$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ConfigError(ValueError):
    """An environment variable has a value the server cannot use; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name}={value} must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name}={raw} must be a finite number >= {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}={env[name]!r} is not a boolean (use true or false)")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Every knob of the model server; build it with :meth:`from_env`."""

    port: int = 8080
    host: str = "0.0.0.0"
    workers: int = 1
    threads: int = 4
    graceful_timeout: float = 20.0
    worker_timeout: float = 30.0
    keepalive: float = 5.0
    drain_delay_seconds: float = 0.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False
    model_name: str = "mnist"
    model_base_path: str = "/models"
    model_version: int | None = None
    model_backend: str = "litert"
    model_poll_seconds: float = 30.0
    max_batch_size: int = 64
    max_body_bytes: int = 8 * 1024 * 1024
    intra_op_threads: int = 1
    inter_op_threads: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raises :class:`ConfigError` naming the bad variable."""
        env = os.environ if env is None else env
        name = env.get("MODEL_NAME", "").strip() or "mnist"
        if not _NAME_RE.match(name):
            raise ConfigError(f"MODEL_NAME={name!r} must be lowercase letters, digits, '.', '_' or '-' (max 63)")
        raw_version = env.get("MODEL_VERSION", "").strip()
        version = _int(env, "MODEL_VERSION", 0, 1) if raw_version else None
        return cls(
            port=_int(env, "PORT", 8080, 1, 65535),
            host=env.get("HOST", "").strip() or "0.0.0.0",
            workers=_int(env, "WORKERS", 1, 1, 64),
            threads=_int(env, "THREADS", 4, 1, 256),
            graceful_timeout=_float(env, "GRACEFUL_TIMEOUT", 20.0, 0.0),
            worker_timeout=_float(env, "WORKER_TIMEOUT", 30.0, 1.0),
            keepalive=_float(env, "KEEPALIVE", 5.0, 0.0),
            drain_delay_seconds=_float(env, "DRAIN_DELAY_SECONDS", 0.0, 0.0),
            log_level=_choice(env, "LOG_LEVEL", "info", LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", "text", LOG_FORMATS),
            access_log=_bool(env, "ACCESS_LOG", False),
            model_name=name,
            model_base_path=env.get("MODEL_BASE_PATH", "").strip() or "/models",
            model_version=version,
            model_backend=_choice(env, "MODEL_BACKEND", "litert", BACKENDS),
            model_poll_seconds=_float(env, "MODEL_POLL_SECONDS", 30.0, 0.0),
            max_batch_size=_int(env, "MAX_BATCH_SIZE", 64, 1, 1_000_000),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 8 * 1024 * 1024, 1024),
            intra_op_threads=_int(env, "INTRA_OP_THREADS", 1, 1, 256),
            inter_op_threads=_int(env, "INTER_OP_THREADS", 1, 1, 256),
        )

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (used by tests and tools)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)
