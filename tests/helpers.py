"""Test helpers shared by several test modules: spec factories, AWS call recorders, a prerequisite network on
the moto server, a fake clock for retry policies, and the golden-file switch."""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import replace
from typing import Any

from kubeaws.aws.retry import RetryPolicy
from kubeaws.spec.models import ClusterSpec

BASE: dict[str, Any] = {
    "apiVersion": "kubeaws.io/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "dev"},
    "spec": {
        "region": "us-east-1",
        "kubernetesVersion": "1.31",
        "network": {"vpc": {"cidr": "10.0.0.0/16"}, "availabilityZones": ["us-east-1a", "us-east-1b"]},
        "access": {"adminCIDRs": ["203.0.113.0/24"]},
        "nodeGroups": [{"name": "general", "instanceTypes": ["m5.large"]}],
    },
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_spec(name: str = "dev", **spec_overrides: Any) -> ClusterSpec:
    """A valid spec with `spec:` fields overridden (nested dicts merged)."""
    doc = merge(BASE, {"metadata": {"name": name}, "spec": spec_overrides})
    return ClusterSpec.model_validate(doc)


class CallRecorder:
    """A botocore `before-call` hook recording (operation, params) of every request. Thread-safe."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, model: Any, params: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, copy.deepcopy(params.get("body", {}) if isinstance(params, dict)
                                                           else {})))

    def operations(self) -> list[str]:
        with self._lock:
            return [op for op, _ in self.calls]


def make_network(ctx: Any, group_names: tuple[str, ...]) -> dict[str, Any]:
    """On the moto server: a VPC 10.0.0.0/16, one subnet in each of us-east-1a and us-east-1b, and security
    groups of the given names in it. Returns {"vpc", "subnets", "groups"} (IDs)."""
    vpc = ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ctx.call("ec2", "create_subnet", VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                        AvailabilityZone=az)["Subnet"]["SubnetId"]
               for i, az in enumerate(("us-east-1a", "us-east-1b"))]
    groups = [ctx.call("ec2", "create_security_group", GroupName=n, Description=n, VpcId=vpc)["GroupId"]
              for n in group_names]
    return {"vpc": vpc, "subnets": subnets, "groups": groups}


class FakeClock:
    """A clock for `RetryPolicy(clock=..., sleep=...)`: `sleep` only moves the time on, so waits and retries
    run their real budgets in no real time. Counts the sleeps (a wait that polls more than expected shows in
    `sleeps`, never as a slow test). Thread-safe."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)
            self.sleeps += 1

    def policy(self, base: RetryPolicy | None = None) -> RetryPolicy:
        """`base` (the real AWS defaults when None) reading and sleeping through this clock."""
        return replace(base or RetryPolicy(), clock=self.monotonic, sleep=self.sleep)


def update_golden() -> bool:
    """Whether golden files are to be rewritten: KUBEAWS_UPDATE_GOLDEN=1 exactly (any other value, "0"
    included, compares)."""
    return os.environ.get("KUBEAWS_UPDATE_GOLDEN") == "1"
