"""Container images of the two services, built without any image registry if need be.

- ``engine``: find Docker, podman or buildah and give podman/buildah this project's own storage.
- ``base``: the base image, the Dockerfiles' default or one made from Debian's packages.
- ``pip_config``: the builder's pip index configuration, handed to the build as secrets.
- ``build``: build both images tagged with the revision, report sizes, push by digest.

``python -m generator.tools.images --help`` is the command line ``make images`` calls.
"""
