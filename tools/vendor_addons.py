"""Brings the upstream manifests kubeaws ships into src/kubeaws/addons/vendor/ and records them in
vendor/SOURCES.json (repository, commit, path, sha256): a maintainer's tool, run by hand on a version bump,
never by kubeaws or its tests (tests/test_vendored.py checks what it wrote).

Every file comes from a local git copy of its public repository at a pinned tag, taken verbatim:
- calico: manifests/tigera-operator.yaml of projectcalico/calico;
- rook: deploy/examples/{crds,common,operator}.yaml of rook/rook;
- aws-load-balancer-controller: its chart's crds/crds.yaml and docs/install/iam_policy.json of
  kubernetes-sigs/aws-load-balancer-controller;
- aws-vpc-cni: config/master/aws-k8s-cni.yaml of aws/amazon-vpc-cni-k8s (the release's manifest, its images in
  us-west-2's registry: kubeaws sets the cluster's region's, kubeaws.addons.descriptors.aws_vpc_cni);
- cilium: the chart archive cilium-<version>.tgz of cilium/charts (the repository behind the project's Helm
  repository; its sha256 is checked against the repository's index.yaml), rendered here, at build time, with
  the values in `CILIUM_VALUES` (written beside the result as values.yaml). Rendering needs Helm's Go SDK: the
  `helm-python-sdk` wheel from PyPI (Helm v4 through ctypes, no helm binary), installed in a separate venv:

      python3 -m venv /tmp/helmvenv && /tmp/helmvenv/bin/pip install helm-python-sdk==0.2.2 pyyaml
      /tmp/helmvenv/bin/python tools/vendor_addons.py --git calico=DIR --git rook=DIR --git cilium-charts=DIR \
          --git aws-load-balancer-controller=DIR --git aws-vpc-cni=DIR

`DIR` is a git directory holding the repository's tags (a clone, or a bare mirror). `--only ADDON` (repeatable)
vendors only those addons and keeps the other entries of SOURCES.json as they are, e.g.

      python3 tools/vendor_addons.py --git aws-vpc-cni=DIR --only aws-vpc-cni
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENDOR = Path(__file__).resolve().parent.parent / "src" / "kubeaws" / "addons" / "vendor"

CALICO_VERSION = "v3.28.2"
ROOK_VERSION = "v1.15.4"
CILIUM_VERSION = "1.16.3"
LBC_VERSION = "v3.5.0"
VPC_CNI_VERSION = "v1.23.0"

#: Helm values kubeaws renders the cilium chart with. Per-cluster values (the pod CIDR, the operator's
#: replicas, the image registry) are set on the rendered documents by kubeaws.addons.upstream, so the values
#: here are the cluster-independent ones; the pod CIDR and replicas below are overwritten per cluster.
CILIUM_VALUES: dict[str, Any] = {
    "kubeProxyReplacement": False,
    "routingMode": "tunnel",
    "tunnelProtocol": "vxlan",
    "ipam": {"mode": "cluster-pool",
             "operator": {"clusterPoolIPv4PodCIDRList": ["10.0.0.0/8"], "clusterPoolIPv4MaskSize": 24}},
    "operator": {"replicas": 2},
    # Hubble's TLS certificates made in the cluster by a Job (the chart's default, `helm`, would generate
    # them here, and every cluster would share one CA and its key).
    "hubble": {"tls": {"auto": {"method": "cronJob"}}},
}

#: Helm's install order of kinds (helm.sh/helm releaseutil.InstallOrder); other kinds come after.
HELM_ORDER = ["PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
              "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
              "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
              "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
              "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
              "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
              "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


@dataclass(frozen=True)
class Upstream:
    addon: str
    version: str
    name: str  # file name under vendor/<addon>/<version>/
    repository: str
    git: str  # key of --git
    ref: str
    path: str


UPSTREAM = [
    Upstream("calico", CALICO_VERSION, "tigera-operator.yaml", "github.com/projectcalico/calico", "calico",
             CALICO_VERSION, "manifests/tigera-operator.yaml"),
    *(Upstream("rook", ROOK_VERSION, f"{name}.yaml", "github.com/rook/rook", "rook", ROOK_VERSION,
               f"deploy/examples/{name}.yaml") for name in ("crds", "common", "operator")),
    Upstream("aws-load-balancer-controller", LBC_VERSION, "crds.yaml",
             "github.com/kubernetes-sigs/aws-load-balancer-controller", "aws-load-balancer-controller", LBC_VERSION,
             "helm/aws-load-balancer-controller/crds/crds.yaml"),
    Upstream("aws-load-balancer-controller", LBC_VERSION, "iam_policy.json",
             "github.com/kubernetes-sigs/aws-load-balancer-controller", "aws-load-balancer-controller", LBC_VERSION,
             "docs/install/iam_policy.json"),
    Upstream("aws-vpc-cni", VPC_CNI_VERSION, "aws-k8s-cni.yaml", "github.com/aws/amazon-vpc-cni-k8s", "aws-vpc-cni",
             VPC_CNI_VERSION, "config/master/aws-k8s-cni.yaml"),
]


def git(directory: str, *args: str) -> bytes:
    return subprocess.run(["git", "-C", directory, *args], check=True, capture_output=True).stdout


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(addon: str, version: str, name: str, data: bytes) -> str:
    path = VENDOR / addon / version / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.relative_to(VENDOR).as_posix()


def _kind(doc: str) -> str:
    match = re.search(r"^kind:\s*(\S+)", doc, re.M)
    return match.group(1) if match else ""


def render_cilium(directory: str) -> list[dict[str, Any]]:
    import helm_python as helm  # the one-off renderer (module docstring)
    import yaml

    log = git(directory, "log", "-1", "--format=%H", "--", f"cilium-{CILIUM_VERSION}.tgz").decode().strip()
    archive = git(directory, "show", f"{log}:cilium-{CILIUM_VERSION}.tgz")
    index = yaml.safe_load(git(directory, "show", f"{log}:index.yaml"))
    (entry,) = [e for e in index["entries"]["cilium"] if e["version"] == CILIUM_VERSION]
    if entry["digest"] != sha256(archive):
        raise SystemExit(f"cilium-{CILIUM_VERSION}.tgz does not match the digest in index.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tgz = Path(tmp) / "chart.tgz"
        tgz.write_bytes(archive)
        with helm.Chart.load(tgz) as chart:
            rendered = chart.render(CILIUM_VALUES, name="cilium", namespace="kube-system", is_install=True)
    docs: list[tuple[int, str, int, str]] = []
    for path, text in rendered.items():
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for i, doc in enumerate(re.split(r"(?m)^---\s*$", text)):
            if doc.strip():
                kind = _kind(doc)
                order = HELM_ORDER.index(kind) if kind in HELM_ORDER else len(HELM_ORDER)
                docs.append((order, path, i, doc.strip("\n") + "\n"))
    header = (f"# The cilium chart {CILIUM_VERSION} (cilium-{CILIUM_VERSION}.tgz, sha256 {sha256(archive)})\n"
              f"# rendered by tools/vendor_addons.py with Helm {helm.helm_sdk_version()} and the values in\n"
              "# values.yaml beside this file, release `cilium` in kube-system. Generated: do not edit.\n")
    body = "".join(f"---\n# Source: {path}\n{doc}" for _, path, _, doc in sorted(docs))
    values = "# Helm values the chart was rendered with (tools/vendor_addons.py CILIUM_VALUES).\n" + \
        yaml.safe_dump(CILIUM_VALUES, sort_keys=True)
    return [
        {"addon": "cilium", "version": CILIUM_VERSION, "path": write("cilium", CILIUM_VERSION, "cilium.yaml",
                                                                     (header + body).encode()),
         "repository": "github.com/cilium/charts", "commit": log, "upstreamPath": f"cilium-{CILIUM_VERSION}.tgz",
         "upstreamSha256": sha256(archive),
         "rendered": f"Helm {helm.helm_sdk_version()} (helm-python-sdk), values.yaml beside it"},
        {"addon": "cilium", "version": CILIUM_VERSION,
         "path": write("cilium", CILIUM_VERSION, "values.yaml", values.encode()),
         "repository": "kubeaws", "commit": None, "upstreamPath": "tools/vendor_addons.py CILIUM_VALUES"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--git", action="append", default=[], metavar="NAME=DIR",
                        help="git directory of calico, rook, cilium-charts, aws-load-balancer-controller, aws-vpc-cni")
    parser.add_argument("--only", action="append", default=[], metavar="ADDON",
                        help="vendor only this addon, keep the other entries of SOURCES.json")
    args = parser.parse_args()
    dirs = dict(item.split("=", 1) for item in args.git)
    only = set(args.only)
    files: list[dict[str, Any]] = []
    if only:
        kept = json.loads((VENDOR / "SOURCES.json").read_text())["files"]
        files += [entry for entry in kept if entry["addon"] not in only]
    for up in UPSTREAM:
        if only and up.addon not in only:
            continue
        commit = git(dirs[up.git], "rev-parse", f"{up.ref}^{{commit}}").decode().strip()
        data = git(dirs[up.git], "show", f"{commit}:{up.path}")
        files.append({"addon": up.addon, "version": up.version, "path": write(up.addon, up.version, up.name, data),
                      "repository": up.repository, "commit": commit, "tag": up.ref, "upstreamPath": up.path})
    if not only or "cilium" in only:
        files += render_cilium(dirs["cilium-charts"])
    for entry in files:
        if not only or entry["addon"] in only:
            entry["sha256"] = sha256((VENDOR / entry["path"]).read_bytes())
    doc = {"comment": "Upstream files kubeaws ships, each verbatim from `repository` at `commit` (`upstreamPath`), "
                      "or rendered from it where `rendered` says how; written by tools/vendor_addons.py, checked "
                      "by tests/test_vendored.py and at load (kubeaws.addons.vendored).",
           "files": files}
    (VENDOR / "SOURCES.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
