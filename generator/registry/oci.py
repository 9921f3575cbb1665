"""Model images in this repository: where ``make package-model`` keeps a version's image layout.

Building an image (:func:`services.model_image.package`, the same files always giving the same
digest) and talking to a registry (:func:`services.registry_client.push` and ``pull``, standard
library only) live under ``services/``, because the images run them too: the trainer packages
and pushes what it trained, the server's init container (``services/fetch_model.py``) pulls the
pinned version. The release commands import them from there; this module adds what only a
checkout has, the cache directory of packaged layouts.
"""

from __future__ import annotations

from pathlib import Path


def layout_dir(root: Path, model: str, version: int) -> Path:
    """Where ``make package-model`` writes a version's image layout (git-ignored)."""
    return root / ".cache" / "model-artifacts" / model / str(version)
