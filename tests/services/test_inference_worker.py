"""Unit tests of the worker's own parts that need no running server (the server tests use them all)."""

from __future__ import annotations

from gunicorn.config import Config

from services.inference.worker import ReadOnceConfig


class CountingConfig(Config):
    """gunicorn's Config, counting the settings looked up through ``Config.__getattr__``."""

    def __init__(self) -> None:
        super().__init__()
        self.__dict__["lookups"] = []

    def __getattr__(self, name: str) -> object:
        if name != "lookups":
            self.__dict__.setdefault("lookups", []).append(name)
        return super().__getattr__(name)


def test_read_once_config_gives_every_setting_as_gunicorn_does_and_looks_each_up_once() -> None:
    cfg = CountingConfig()
    cfg.set("threads", 3)
    cfg.set("keepalive", 7)
    wrapped = ReadOnceConfig(cfg)
    for name in cfg.settings:
        assert getattr(wrapped, name) == getattr(cfg, name), name
    cfg.lookups.clear()
    assert (wrapped.threads, wrapped.keepalive, wrapped.threads) == (3, 7, 3)
    assert cfg.lookups == []  # both were read above: no second lookup
    assert (cfg.threads, cfg.threads) == (3, 3)
    assert cfg.lookups == ["threads", "threads"]  # gunicorn's own Config looks a setting up at every read
    assert wrapped.forwarded_allow_networks() == cfg.forwarded_allow_networks()  # methods pass through
