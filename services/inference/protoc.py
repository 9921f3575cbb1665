"""Compile ``protos/*.proto`` into ``protos/tfserving.binpb`` with grpcio-tools (``make protos``).

``--check`` fails (exit 1) when the committed file is stale. A development tool: grpcio-tools is in
the dev group, not in the serving image, which loads the committed descriptor set
(``tfserving.py``); ``tests/services/test_grpc_protos.py`` runs the check.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "protos"
DESCRIPTOR_SET = PROTO_DIR / "tfserving.binpb"


def proto_files() -> list[str]:
    """The repository's ``.proto`` files, relative to ``protos/`` (their import paths), sorted."""
    return sorted(p.relative_to(PROTO_DIR).as_posix() for p in PROTO_DIR.rglob("*.proto"))


def compile_protos() -> bytes:
    """Compile ``protos/`` with grpcio-tools' protoc into a serialized FileDescriptorSet (dev only)."""
    from importlib.resources import files

    from grpc_tools import protoc

    include = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory(prefix="protos-") as tmp:
        out = os.path.join(tmp, "set.binpb")
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", "--include_imports", f"--descriptor_set_out={out}"]
        if protoc.main([*args, *proto_files()]) != 0:
            raise RuntimeError(f"protoc failed on {PROTO_DIR}")
        return Path(out).read_bytes()


def main(argv: list[str] | None = None) -> int:
    """Recompile the descriptor set and write it atomically; ``--check`` only compares (exit 1 if stale)."""
    data = compile_protos()
    if "--check" in (sys.argv[1:] if argv is None else argv):
        if DESCRIPTOR_SET.exists() and DESCRIPTOR_SET.read_bytes() == data:
            return 0
        print(f"protos: {DESCRIPTOR_SET.name} is stale: run 'make protos' and commit the result", file=sys.stderr)
        return 1
    staged = DESCRIPTOR_SET.with_suffix(".partial")
    staged.write_bytes(data)
    staged.replace(DESCRIPTOR_SET)
    print(f"protos: wrote {DESCRIPTOR_SET.name} ({len(data)} bytes) from {len(proto_files())} .proto files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
