"""The Pod Security Standard "restricted" values that both the pull-request checks
(``generator/validate/policies.py``) and the cluster's admission policies
(``generator/synthesis/admission.py``) hold pods to, written once.
"""

from __future__ import annotations

#: The volume types the restricted profile allows (``image`` too: an OCI image mounted read-only).
ALLOWED_VOLUME_TYPES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
#: The sysctls the baseline profile (and so restricted) allows a pod to set.
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
#: The seccomp and AppArmor profile types restricted accepts.
PROFILE_TYPES = ("RuntimeDefault", "Localhost")
#: The one capability a restricted container may add (after dropping ALL).
ADDABLE_CAPABILITIES = ("NET_BIND_SERVICE",)
