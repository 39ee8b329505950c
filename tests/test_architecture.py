"""Code-shape rules the project holds itself to: one-directional layers (spec -> model -> engine -> aws;
renderers and doctor never call the engine), every module (top-level ones included) in a layer with its
allowed imports, the public API re-exported, every module documented and under ~500 lines, ruff and mypy
clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "kubeaws"
MODULES = sorted(p for p in SRC.rglob("*.py"))

# layer -> kubeaws layers it may import (besides itself, and the leaves kubeaws.errors and kubeaws.cache). A
# package is a layer; so is each top-level module (src/kubeaws/<name>.py).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),  # exceptions only: imported by every layer
    "cache": set(),  # where kubeaws keeps its caches: a leaf, imported by every layer
    "partition": set(),  # region -> AWS partition, ARNs, service principals, DNS suffix: a leaf too
    "kube_types": set(),  # the Kubernetes types kubeaws manages and their API paths: a leaf (model reads it)
    "casing": set(),  # camelCase keys for JSON/YAML output documents: a leaf
    "spec": set(),
    "aws": set(),
    "pki": set(),  # pure cryptography: CAs, keys, certificates
    "eks_auth": set(),  # EKS bearer tokens signed locally with botocore
    "kube_client": {"aws"},  # a Kubernetes API client retrying with the AWS retry policy
    "resources": {"aws", "pki", "kube_client", "eks_auth"},
    "model": {"spec", "resources", "aws", "bootstrap", "addons"},
    # The plan previews the roll it implies with the rollout planner (rollout.inventory / rollout.planner).
    "engine": {"model", "resources", "aws", "spec", "rollout", "casing"},
    # Operations on a running cluster (rolling replacement): read AWS through the resource kinds' helpers,
    # drive the Kubernetes API; called by the CLI. Upgrades (rollout.upgrade) read the versions the renderers pin.
    "rollout": {"aws", "resources", "kube_client", "spec", "model", "doctor", "reach", "bootstrap", "addons"},
    # How kubeaws reaches a cluster's API: the admin credentials (access), tunnelled through the bastion when
    # the endpoint is private (tunnel); used by the rollout and doctor --live.
    "reach": {"aws", "kube_client", "spec", "access", "tunnel", "eks_auth"},
    "local": set(),
    "addons": {"spec"},
    "bootstrap": {"spec", "addons"},
    # The plan warns of control-plane certificates near expiry (doctor.live_certs.plan_warnings).
    # plan / apply / status give the KubernetesObject kind the cluster's API for the call (reach.KubeReach).
    # During an upgrade the addons that follow the minor wait for the API servers (rollout.upgrade reads them).
    "api": {"spec", "model", "engine", "aws", "resources", "bootstrap", "addons", "lock", "doctor", "reach",
            "rollout"},
    # The per-cluster lock: conditional writes to the state bucket through the AWS context.
    "lock": {"aws"},
    # An application service beside `api`, not a lower layer: the admin kubeconfig reads the state bucket (the
    # CA: pki) or DescribeCluster (eks_auth) and finds the bastion through the resource registry; `render`
    # writes what the model and the bootstrap renderers produce. Only the CLI and doctor --live use it, and
    # it imports neither: the layers stay one-directional (test_layers_form_no_cycle).
    "access": {"spec", "aws", "resources", "model", "bootstrap", "addons", "pki", "eks_auth"},
    # The SSH tunnel through the bastion to a private API: finds the bastion through the AWS context (its tags),
    # reads the spec (bastion OS, key pair) and pins host keys under the kubeaws home (local.emulator.home).
    # Callers hand it the API server URL (from `access`), so it needs neither access nor kube_client.
    "tunnel": {"spec", "aws", "local"},
    # etcd operations on a running kubeadm cluster (snapshot, list): a Job through the API (reach, kube_client)
    # running the script the bootstrap installs (bootstrap: its path), its image mirrored like the addons'
    # (addons), snapshots read from the state bucket (model.state: its name).
    "etcd_ops": {"aws", "spec", "model", "bootstrap", "addons", "kube_client", "reach"},
    # `kubeaws etcd restore`: the operation through the state bucket (aws), the members' agent rendered by the
    # bootstrap, the snapshots and member records read through etcd_ops.
    "etcd_restore": {"aws", "spec", "bootstrap", "etcd_ops"},
    # The control-plane probe: a Job through the API (kube_client) on a member's node, its busybox image
    # mirrored like the addons' (addons).
    "member_probe": {"aws", "spec", "kube_client", "addons"},
    # `kubeaws drill`: terminate a member (aws), follow its group (rollout.inventory) and its node (kube_client),
    # read etcd through the probe (doctor.live_etcd) and validate as the rollout does (rollout.kube_ops).
    "drill": {"aws", "spec", "kube_client", "doctor", "rollout"},
    # Day 2 without a plan (kubeaws.day2): find the account's clusters by tag, scale a group now.
    "day2": {"aws", "resources", "spec"},
    # The public API, re-exported lazily.
    "__init__": {"api"},
    "cli": {"spec", "model", "engine", "aws", "resources", "api", "local", "bootstrap", "addons", "access", "pki",
            "eks_auth", "doctor", "tunnel", "rollout", "reach", "lock", "etcd_ops", "etcd_restore", "day2",
            "drill", "__init__"},
    # doctor reads models and AWS state; --live reaches the Kubernetes API with the admin kubeconfig that
    # `access` builds (the one place that knows how to reach a cluster's API).
    # doctor.live_etcd reads the snapshots' ages through etcd_ops.
    # doctor.live_control_plane reads etcd's health and the certificates through member_probe, and the API
    # server's certificate at the endpoint (tunnel: its host and port).
    "doctor": {"spec", "model", "resources", "aws", "kube_client", "eks_auth", "access", "reach", "etcd_ops",
               "member_probe", "tunnel"},
}
LEAVES = {"errors", "cache", "partition", "kube_types"}


def layer_of(path: Path) -> str:
    """The package a module is in, or the module itself for a top-level module."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _top(name: str) -> str:
    """What `from kubeaws import <name>` imports from: a module or package, else kubeaws/__init__.py."""
    return name if (SRC / name).is_dir() or (SRC / f"{name}.py").is_file() else "__init__"


def kubeaws_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "kubeaws" else [f"kubeaws.{_top(a.name)}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kubeaws" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_has_a_layer() -> None:
    layers = {layer_of(p) for p in MODULES}
    assert layers == set(ALLOWED), (f"unknown layers {sorted(layers - set(ALLOWED))}, "
                                    f"stale {sorted(set(ALLOWED) - layers)}")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_layers_are_one_directional(path: Path) -> None:
    layer = layer_of(path)
    assert layer in ALLOWED, f"{path.relative_to(SRC)}: give its layer an entry in ALLOWED"
    extra = kubeaws_imports(path) - ALLOWED[layer] - {layer} - LEAVES
    assert not extra, f"{path.relative_to(SRC)} ({layer}) imports {sorted(extra)}"


def test_layers_form_no_cycle() -> None:
    """The allowed imports form a DAG: no layer reaches itself through others."""
    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in ALLOWED[todo.pop()] - {start}:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for layer, deps in ALLOWED.items():
        assert deps <= set(ALLOWED), (layer, deps - set(ALLOWED))
        assert all(layer not in reach(dep) for dep in deps), f"{layer} is reachable from its own imports"


def test_public_api_is_reexported() -> None:
    import kubeaws
    from kubeaws import api

    for name in kubeaws.__all__:
        assert getattr(kubeaws, name) is (getattr(api, name) if name != "__version__" else kubeaws.__version__)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_are_documented_and_small(path: Path) -> None:
    text = path.read_text()
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
    assert len(text.splitlines()) <= 500, f"{path} has more than 500 lines"


def _tool(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def test_ruff_clean() -> None:
    root = SRC.parent.parent
    proc = subprocess.run([_tool("ruff"), "check", "src", "tests", "bench"], cwd=root, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_clean() -> None:
    root = SRC.parent.parent
    proc = subprocess.run([_tool("mypy")], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
