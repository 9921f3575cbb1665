"""A real OCI registry for the model-artifact tests: the CNCF Distribution server (Debian's
``docker-registry``, bootstrapped by ``generator.tools.oci_registry``) on a free loopback port,
its storage in a temporary directory. The tests start it and stop exactly what they started."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml
from loopback import free_port

from generator.tools.oci_registry import registry_path


@contextmanager
def running_registry(directory: Path) -> Iterator[str]:
    """Serve a registry until the block ends; yields its ``host:port``."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(directory / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    (directory / "config.yml").write_text(yaml.safe_dump(config))
    log = (directory / "registry.log").open("w")
    proc = subprocess.Popen(
        [registry_path(), "serve", str(directory / "config.yml")], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the registry did not start:\n{(directory / 'registry.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
