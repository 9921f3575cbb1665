"""Settings shared by every suite: the hypothesis profiles.

``make test`` runs the ``ci`` profile: a bounded, derandomized number of examples, so the suite
is stable and quick. A nightly run explores more, at random: ``pytest --hypothesis-profile=nightly``.
Tests that set their own ``max_examples`` keep it under either profile.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
