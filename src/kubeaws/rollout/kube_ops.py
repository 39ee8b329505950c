"""The Kubernetes side of a rollout (`runner.Cluster`), through kubeaws.kube_client:

- `drain(node)`: cordon, then evict every pod on the node through the policy/v1 Eviction subresource (so the
  API server enforces PodDisruptionBudgets), skipping DaemonSet pods (their controller puts them back at
  once, and they go with the node), mirror pods (static pods: the kubelet runs them from files) and finished
  pods; keeps asking until the node holds none of those pods any more. A budget that keeps refusing until
  `timeout` stops the rollout with the pod and the budget named (kubectl drain only says "Cannot evict pod
  as it would violate the pod's disruption budget"). Like kops' rolling update, pods without a controller and
  pods with emptyDir data are evicted too: the instance is about to be terminated, their data goes with it.
- `ready_nodes(nodes)`: which of the nodes are registered with their Ready condition True: one GET for a
  single node, one list of the nodes for several (a group's readiness poll is one request, not one per
  instance).
- `forget(node)`: the Node object of a terminated instance removed (the cloud provider would, minutes
  later; removing it now keeps validation from waiting on a node that is gone).
- `problems()`: what `kops validate cluster` checks, with doctor --live's wording: every node Ready, every
  kube-system pod Running with its containers ready (`doctor.live_k8s.check_pods`). Cordoned nodes count
  too: the rollout uncordons nothing, it replaces.

The connection (admin credentials, tunnelled through the bastion for a private endpoint) is kubeaws.reach's.
Called by kubeaws.rollout.operation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from kubeaws.aws.retry import RetryPolicy
from kubeaws.doctor.live_k8s import KUBE_SYSTEM_PODS, check_pods
from kubeaws.kube_client import (
    KubeClient,
    is_daemonset_pod,
    is_mirror_pod,
    node_is_ready,
    pod_is_finished,
    ready_condition,
)
from kubeaws.rollout.runner import RolloutError
from kubeaws.spec.models import ClusterSpec


def _name(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def must_go(pod: dict[str, Any]) -> bool:
    """A pod that draining evicts: not a DaemonSet's, not a mirror, not finished."""
    return not (is_daemonset_pod(pod) or is_mirror_pod(pod) or pod_is_finished(pod))


class KubeCluster:
    """`runner.Cluster` on a live API. `say` gets one line per notable step (a blocked eviction...)."""

    def __init__(self, kube: KubeClient, spec: ClusterSpec, policy: RetryPolicy,
                 say: Callable[[str], None] | None = None) -> None:
        self.kube = kube
        self.spec = spec
        self.policy = policy
        self.say = say or (lambda _: None)

    def drain(self, node: str, timeout: float) -> None:
        if self.kube.cordon(node) is None:
            return  # the node is gone already (its instance was replaced before a crash)
        deadline = self.policy.clock() + timeout
        blocked: dict[str, str] = {}
        while True:
            pods = [p for p in self.kube.pods_on_node(node) if must_go(p)]
            if not pods:
                return
            for pod in pods:
                if (pod.get("metadata") or {}).get("deletionTimestamp"):
                    continue  # evicted, terminating
                answer = self.kube.evict(pod)
                if answer.accepted:
                    blocked.pop(_name(pod), None)
                elif blocked.get(_name(pod)) != str(answer):
                    blocked[_name(pod)] = str(answer)
                    self.say(f"draining {node}: {answer}")
            if self.policy.clock() >= deadline:
                left = "; ".join(blocked.values()) or ", ".join(f"pod {_name(p)} still terminating" for p in pods)
                raise RolloutError(
                    f"node {node} not drained after {timeout:.0f}s: {left}. The node stays cordoned and its "
                    "instance is not terminated. Let the budget allow a disruption (scale the workload up, or "
                    "relax the PodDisruptionBudget), then run the rollout again; or raise --drain-timeout")
            self.policy.sleep(self.policy.poll_interval)

    def ready_nodes(self, nodes: Collection[str]) -> set[str]:
        wanted = set(nodes)
        if len(wanted) == 1:
            [name] = wanted
            found = self.kube.get_node(name)
            return {name} if found is not None and node_is_ready(found) else set()
        if not wanted:
            return set()
        return {str((n.get("metadata") or {}).get("name")) for n in self.kube.list_nodes() if node_is_ready(n)} & wanted

    def forget(self, node: str) -> None:
        self.kube.delete_node(node)

    def problems(self) -> list[str]:
        out = []
        for node in self.kube.list_nodes():
            if not node_is_ready(node):
                condition = ready_condition(node)
                why = condition.get("reason") or ("no Ready condition yet" if not condition else "not Ready")
                out.append(f"node {(node.get('metadata') or {}).get('name')} is not Ready ({why})")
        pods = (self.kube.get(KUBE_SYSTEM_PODS) or {}).get("items") or []
        out += [f.message for f in check_pods(self.spec, pods) if f.severity == "error"]
        return out
