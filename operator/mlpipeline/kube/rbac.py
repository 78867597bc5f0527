"""Every API request the operator makes, as the RBAC it needs in a namespace it watches. The chart's
Role/ClusterRole grants exactly these (tests/cluster/test_helm.py asks the real authorizer)."""

from __future__ import annotations

from typing import NamedTuple


class Permission(NamedTuple):
    verb: str
    group: str  # "" for the core API group
    resource: str


def _grant(group: str, resource: str, *verbs: str) -> list[Permission]:
    return [Permission(verb, group, resource) for verb in verbs]


NAMESPACED: list[Permission] = [
    *_grant("mlpipeline.dev", "mlpipelines", "get", "list", "watch"),
    *_grant("mlpipeline.dev", "mlpipelines/status", "patch"),
    # owned objects block their owner's deletion (blockOwnerDeletion): under the admission plugin
    # OwnerReferencesPermissionEnforcement (OpenShift's default) creating them needs this
    *_grant("mlpipeline.dev", "mlpipelines/finalizers", "update"),
    *_grant("batch", "jobs", "list", "watch", "create", "delete"),
    *_grant("ray.io", "rayjobs", "list", "watch", "create", "delete"),  # spec.train.distributed
    *_grant("networking.k8s.io", "networkpolicies", "create", "delete"),  # each RayJob's (rayjob.py)
    *_grant("", "pods", "list", "watch"),
    *_grant("", "events", "create"),
    # server-side apply creates (create) or updates (patch) the serving objects, each read first
    # (get): one of that name that the pipeline does not control is left alone
    *_grant("apps", "deployments", "get", "create", "patch", "delete"),
    *_grant("", "services", "get", "create", "patch", "delete"),
    *_grant("gateway.networking.k8s.io", "httproutes", "get", "create", "patch", "delete"),
]

# Leader election (controller/leader.py), in the operator's own namespace.
LEADER_ELECTION: list[Permission] = _grant("coordination.k8s.io", "leases", "get", "create", "update")

# What the operator must never be able to do: change what users declared, or read their secrets.
FORBIDDEN: list[Permission] = [
    Permission("patch", "mlpipeline.dev", "mlpipelines"),
    Permission("delete", "mlpipeline.dev", "mlpipelines"),
    Permission("get", "", "secrets"),
    Permission("create", "", "pods"),
]
