"""What the FAKE Kubernetes API server (tests/kube_fake.py) knows of Kubernetes itself, kept apart from its
HTTP side: object builders for tests (`node`, `pod`, `pdb`), label and field selectors as the API server
parses them, merge patches (JSON merge patch, and strategic merge patch for the maps and scalars kubeaws
patches), and the disruption controller's arithmetic (a PodDisruptionBudget's `disruptionsAllowed` from the
healthy pods its selector matches). Used by tests/kube_fake.py and the tests that fill it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: What a real API server answers when an eviction would break a budget (HTTP 429).
PDB_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
#: ... and when more than one budget covers the pod (HTTP 500).
MANY_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FIELDS = {"spec.nodeName", "metadata.name", "metadata.namespace", "status.phase"}


# -- builders ---------------------------------------------------------------------------------------------
def node(name: str, ready: bool = True, labels: Mapping[str, str] | None = None, unschedulable: bool = False,
         provider_id: str = "") -> dict[str, Any]:
    """A Node as the kubelet registers it: a Ready condition (True or False) among others."""
    spec: dict[str, Any] = {"providerID": provider_id} if provider_id else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": spec, "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                                    ready_condition(ready)]}}


def ready_condition(ready: bool) -> dict[str, str]:
    return {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady"}


def pod(name: str, namespace: str = "default", node_name: str | None = None,
        labels: Mapping[str, str] | None = None, owner: str | None = None, phase: str = "Running",
        ready: bool = True, mirror: bool = False) -> dict[str, Any]:
    """A Pod bound to `node_name` (None: not scheduled), owned by `owner` ("ReplicaSet/web-5d4f8",
    "DaemonSet/kube-proxy", ...; None: a bare pod), a static pod's mirror when `mirror`."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if owner:
        kind, owner_name = owner.split("/", 1)
        meta["ownerReferences"] = [{"apiVersion": "v1" if kind == "Node" else "apps/v1", "kind": kind,
                                    "name": owner_name, "uid": f"uid-{owner_name}", "controller": True}]
        meta["generateName"] = f"{owner_name}-"
    if mirror:
        meta["annotations"] = {MIRROR_ANNOTATION: f"hash-{name}"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    if node_name:
        spec["nodeName"] = node_name
    conditions = [{"type": "Ready", "status": "True" if ready and phase == "Running" else "False"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": conditions}}


def pdb(name: str, namespace: str = "default", min_available: int | str | None = None,
        max_unavailable: int | str | None = None, match_labels: Mapping[str, str] | None = None,
        match_expressions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A policy/v1 PodDisruptionBudget (minAvailable or maxUnavailable, an int or a percent string)."""
    spec: dict[str, Any] = {"selector": {}}
    if match_labels is not None:
        spec["selector"]["matchLabels"] = dict(match_labels)
    if match_expressions is not None:
        spec["selector"]["matchExpressions"] = match_expressions
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


# -- selectors --------------------------------------------------------------------------------------------
LABEL_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """The string form (`a=b,c!=d,e,!f,g in (h,i),j notin (k)`); ValueError on a term it cannot parse."""
    terms = []
    for term in re.split(r",(?![^(]*\))", selector):
        found = LABEL_TERM.match(term)
        if term.strip() and found is None:
            raise ValueError(f"unable to parse requirement: {term!r}")
        if found is not None and term.strip():
            terms.append(found.groups())
    for negate, key, op, value, set_op, values in terms:
        have = labels.get(key)
        if negate:
            ok = have is None
        elif op in ("=", "=="):
            ok = have == value
        elif op == "!=":
            ok = have != value
        elif set_op:
            members = {v.strip() for v in values.split(",") if v.strip()}
            ok = (have in members) if set_op == "in" else (have not in members)
        else:
            ok = have is not None
        if not ok:
            return False
    return True


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions). policy/v1: an empty selector matches every
    pod of the namespace; a missing one (None) matches none."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or ())
        if op in ("In", "NotIn") and (labels.get(key) in values) != (op == "In"):
            return False
        if op in ("Exists", "DoesNotExist") and (key in labels) != (op == "Exists"):
            return False
    return True


def field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = (value or {}).get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def field_selector_matches(selector: str, obj: Mapping[str, Any]) -> bool:
    """`spec.nodeName=n,status.phase!=Succeeded`; ValueError naming a field the API server does not
    support for pods (it answers 400), whatever the objects."""
    terms = []
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        found = re.match(r"^([\w.]+)(==|=|!=)(.*)$", term)
        if found is None or found.group(1) not in FIELDS:
            raise ValueError(f"field label not supported: {found.group(1) if found else term}")
        terms.append(found.groups())
    return all((field_value(obj, key) == value) == (op != "!=") for key, op, value in terms)


# -- patches ----------------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null removes a key, anything else replaces. Also what a
    strategic merge patch does for maps and scalars (lists with merge keys are not needed here)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- disruption controller ----------------------------------------------------------------------------------
def pod_is_healthy(p: Mapping[str, Any]) -> bool:
    status = p.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and ready and not p["metadata"].get("deletionTimestamp")


def scaled(value: int | str, total: int) -> int:
    """An IntOrString against `total`: "50%" of 3 pods is 2 (rounded up, as the disruption controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def pdb_status(budget: Mapping[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The status the disruption controller would write: expected pods (those the selector matches in the
    budget's namespace; the real controller asks their controllers' scale), healthy ones, the healthy count
    the budget wants and how many disruptions that allows."""
    ns, spec = budget["metadata"].get("namespace"), budget.get("spec") or {}
    matched = [p for p in pods if p["metadata"].get("namespace") == ns
               and selector_matches(spec.get("selector"), p["metadata"].get("labels") or {})
               and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    expected, healthy = len(matched), sum(pod_is_healthy(p) for p in matched)
    if spec.get("maxUnavailable") is not None:
        desired = max(0, expected - scaled(spec["maxUnavailable"], expected))
    else:
        desired = scaled(spec.get("minAvailable", 1), expected)
    return {"expectedPods": expected, "currentHealthy": healthy, "desiredHealthy": desired,
            "disruptionsAllowed": max(0, healthy - desired), "observedGeneration": 1}
