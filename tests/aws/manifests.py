"""The Kubernetes objects of the smoke workload, as plain dicts (applied with `kubectl apply -f -`):

- `e2e-agnhost`: a DaemonSet of agnhost `netexec` on EVERY node, control-plane nodes included (it tolerates
  every taint), so that pod traffic is tried between all nodes and AZs (problems 1 and 2 of DESIGN.md);
- `e2e-agnhost-headless`: a headless Service over it (DNS must return every pod's address);
- `e2e-agnhost-lb`: a `type: LoadBalancer` Service over it, open to the runner's CIDR only;
- `e2e-data` + pods: a PVC on the `gp3` StorageClass kubeaws installs with the EBS CSI driver;
- `e2e-scale-up`: pause pods whose CPU requests exceed the node group's capacity (cluster-autoscaler).

Everything lives in the namespace `kubeaws-e2e`, deleted before `kubeaws delete`. Pure (the unit tests
validate every object against the Kubernetes schema of the clusters' version).
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "kubeaws-e2e"
#: Pinned test images (the tags the Kubernetes e2e suite uses; agnhost carries sh, curl and dig).
AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.52"
PAUSE = "registry.k8s.io/pause:3.10"
APP = "e2e-agnhost"
HEADLESS = "e2e-agnhost-headless"
LOAD_BALANCER = "e2e-agnhost-lb"
CLAIM = "e2e-data"
SCALE_UP = "e2e-scale-up"
HTTP_PORT = 8080
PART_OF = {"app.kubernetes.io/part-of": "kubeaws-e2e"}
NODE_GROUP_LABEL = "kubeaws.io/node-group"


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": {**PART_OF, **labels}}


def as_list(*docs: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(docs)}


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": dict(PART_OF)}}


def agnhost_daemonset() -> dict[str, Any]:
    labels = {"app": APP}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(APP, **labels),
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {**PART_OF, **labels}},
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "agnhost", "image": AGNHOST,
                        "args": ["netexec", f"--http-port={HTTP_PORT}", "--udp-port=8081"],
                        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                                  {"name": "udp", "containerPort": 8081, "protocol": "UDP"}],
                        "readinessProbe": {"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                                      "limits": {"memory": "64Mi"}},
                    }],
                },
            },
        },
    }


def headless_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(HEADLESS),
        "spec": {"clusterIP": "None", "selector": {"app": APP},
                 "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": HTTP_PORT, "protocol": "TCP"}]},
    }


def load_balancer_service(source_cidr: str) -> dict[str, Any]:
    """Served by the cloud-controller-manager (a classic load balancer by default), reachable from
    `source_cidr` only."""
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(LOAD_BALANCER),
        "spec": {"type": "LoadBalancer", "selector": {"app": APP}, "loadBalancerSourceRanges": [source_cidr],
                 "externalTrafficPolicy": "Cluster",
                 "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]},
    }


def claim(storage_class: str = "gp3", size: str = "1Gi") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(CLAIM),
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}}},
    }


def volume_pod(name: str, shell: str) -> dict[str, Any]:
    """A pod running `sh -c shell` with the claim mounted on /data."""
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, app=name),
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": AGNHOST, "command": ["/bin/sh", "-c", shell],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": CLAIM}}],
        },
    }


def scale_up_deployment(replicas: int, cpu_millis: int, node_group: str) -> dict[str, Any]:
    """Pause pods pinned to `node_group`, each requesting `cpu_millis` (more than half a node: one per node)."""
    labels = {"app": SCALE_UP}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(SCALE_UP, **labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**PART_OF, **labels}},
                "spec": {
                    "nodeSelector": {NODE_GROUP_LABEL: node_group},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "pause", "image": PAUSE,
                                    "resources": {"requests": {"cpu": f"{cpu_millis}m", "memory": "32Mi"}}}],
                },
            },
        },
    }
