"""The model registry in git: one model card per published version (``registry/<model>/<version>.yaml``).

``cards`` reads, checks, builds and writes cards; ``gates`` holds the quality gates of
``platform.yaml`` against card metrics. The commands that use them are ``make register``
(:mod:`generator.release.register`), ``make pin-model`` (:mod:`generator.release.pin_model`),
``make promote`` and ``make validate``. What a card holds and how its digest is defined:
``registry/README.md``.
"""
