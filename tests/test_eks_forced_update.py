"""An EKS managed node group update that a PodDisruptionBudget blocks, and `kubeaws apply --force-eks-update`.

Through the local emulator's EKS front (kubeaws.local.eks_front), which serves UpdateNodegroupVersion and
DescribeUpdate. The emulator runs no nodes, so nothing there drains anything: `EksDrain`, a test proxy in
front of it (tests/faulty_proxy.py's forwarding), stands in for EKS's drain meeting a budget. A version
update sent without `force` answers as EKS does then (DescribeUpdate: Failed, errorCode PodEvictionFailure);
a forced one goes through as the emulator answers it. Production code is unchanged; only the test's stand-in
plays the drain.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from typer.testing import CliRunner

import kubeaws.resources.eks_nodegroup  # noqa: F401  (registers the kind)
from kubeaws.cli.main import app
from kubeaws.errors import KubeawsError
from kubeaws.resources import registry
from kubeaws.resources.base import Desired
from tests.conftest import REGION, make_ctx
from tests.faulty_proxy import FaultyProxy
from tests.helpers import BASE, merge

NODES = registry.get("EksNodegroup")
EVICTION_FAILED = {"errorCode": "PodEvictionFailure", "errorMessage": "Reached max retries while trying to evict "
                   "pods from nodes in node group general", "resourceIds": ["ip-10-0-1-1.ec2.internal"]}


class EksDrain(FaultyProxy):
    """Forwards everything to the emulator; while `blocked`, a version update sent without `force` ends as
    EKS ends one whose drain a PodDisruptionBudget refused. `sent`: the UpdateNodegroupVersion bodies."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.blocked = True
        self.sent: list[dict[str, Any]] = []
        self.failing: set[str] = set()

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        status, kept, data = super().forward(method, path, headers, body)
        if method == "POST" and path.endswith("/update-version") and status == 200:
            sent = json.loads(body)
            self.sent.append(sent)
            if self.blocked and not sent.get("force"):
                self.failing.add(json.loads(data)["update"]["id"])
        elif method == "GET" and "/updates/" in path:
            update_id = path.split("/updates/", 1)[1].split("?", 1)[0]
            if update_id in self.failing:
                doc = json.loads(data)
                doc["update"].update(status="Failed", errors=[EVICTION_FAILED])
                data = json.dumps(doc).encode()
        return status, kept, data


@pytest.fixture
def drain(endpoint: str) -> Iterator[EksDrain]:
    with EksDrain(endpoint) as proxy:
        yield proxy


def test_a_blocked_update_names_the_group_and_the_flag_which_forces_it(endpoint: str, drain: EksDrain) -> None:
    """UpdateNodegroupVersion without force fails on the budget: the error names the node group, the
    budget's way out and `--force-eks-update`. With the context's force (what the flag sets), the update is
    sent with `force: true` (a fresh idempotency token: not the failed update again) and goes through."""
    eks, iam, ec2 = (boto3.client(s, region_name=REGION, endpoint_url=endpoint) for s in ("eks", "iam", "ec2"))
    role = iam.create_role(RoleName=f"eks-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    eks.create_cluster(name="dev", roleArn=role, version="1.31", resourcesVpcConfig={"subnetIds": [subnet]})
    template = ec2.create_launch_template(LaunchTemplateName="dev-general", LaunchTemplateData={
        "InstanceType": "m5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    ctx = make_ctx(drain.url)
    props = {"cluster_name": "dev", "nodegroup_name": "general", "node_role_arn": role, "subnet_ids": [subnet],
             "scaling": {"min": 1, "max": 2}, "launch_template": {"id": template, "version": "1"}}
    found = NODES.create(ctx, Desired("EksNodegroup", "general", props))
    rolled = Desired("EksNodegroup", "general", {**props, "launch_template": {"id": template, "version": "2"}})
    diff = NODES.diff(found, rolled)
    assert set(diff) == {"launch_template"}

    with pytest.raises(KubeawsError) as blocked:
        NODES.update(ctx, found, rolled, diff)
    message = str(blocked.value)
    assert "EKS node group dev/general was not updated: a PodDisruptionBudget refused" in message
    assert "PodEvictionFailure" in message and "kubeaws apply --force-eks-update" in message
    assert [s.get("force") for s in drain.sent] == [None]

    ctx.force_eks_update = True
    done = NODES.update(ctx, found, rolled, diff)
    assert done.fields["launch_template"] == {"id": template, "version": "2"}
    assert [s.get("force") for s in drain.sent] == [None, True]
    assert drain.sent[0]["clientRequestToken"] != drain.sent[1]["clientRequestToken"]
    group = eks.describe_nodegroup(clusterName="dev", nodegroupName="general")["nodegroup"]
    assert group["launchTemplate"]["version"] == "2"


def test_apply_force_eks_update_reaches_the_context(endpoint: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`kubeaws apply --force-eks-update` sets the force on the context every resource change gets, before
    the plan; without the flag it is off. (The plan is cut short here: the resource test above shows what the
    force does.)"""
    from kubeaws import api

    seen: list[bool] = []

    def plan_state(spec: Any, ctx: Any, **_: Any) -> Any:
        seen.append(ctx.force_eks_update)
        raise KubeawsError("stopped by the test after the context was made")

    monkeypatch.setattr(api, "plan_state", plan_state)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(merge(BASE, {"metadata": {"name": "dev"}})))
    for flags in (["--force-eks-update"], []):
        answer = CliRunner().invoke(app, ["apply", "-f", str(path), "--yes", *flags])
        assert "stopped by the test" in answer.output, answer.output
    assert seen == [True, False]
