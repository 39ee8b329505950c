"""Fault injection against the moto server.

- A REAL process death at a deterministic point: a child process (tests/crash_child.py) applies the HA-shaped
  spec with one worker (the executor then makes the same AWS calls in the same order on every run) and
  SIGKILLs itself right after its k-th mutating call has been answered: AWS did it, the process never knew.
  The parent then applies again in-process and must converge: the apply succeeds, a re-plan has nothing
  pending (a duplicate found by its tags would be planned for deletion), no resource exists twice (what
  exists before the child and after the re-apply is read with plain describes, independently of the kinds'
  own `list_owned`, untagged resources included: an orphan the kill left untagged shows too), and delete
  leaves nothing, untagged or not.
  k is sampled evenly over the whole apply, first and last mutating call included: the length of the apply
  is measured once per worker by a child run that is not killed. Each sample is a cluster of its own on
  the worker's moto server (no reset needed).
- Throttling and 5xx answers injected with a botocore hook are retried and the apply still converges.

moto adaptation: ListInstanceProfiles ignores PathPrefix, so the raw count checks each profile's path.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from functools import partial
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from kubeaws import api
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import CLUSTER_TAG, tag_dict
from kubeaws.model import build
from kubeaws.resources import registry
from tests.conftest import REPO, make_ctx
from tests.crash_child import ha_spec

SPEC = ha_spec("dev")
#: Crash points per test run, evenly spread from the first mutating call to the last.
SAMPLES = 8
#: A safety net only: a child run takes seconds.
CHILD_TIMEOUT = 300


def run_child(endpoint: str, cluster: str, k: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.crash_child", endpoint, cluster, str(k)], cwd=REPO,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT)


@pytest.fixture(scope="module")
def full_apply(moto_server: str) -> list[str]:
    """The mutating calls a complete apply of the spec makes with one worker, in order (measured, not assumed)."""
    done = run_child(moto_server, "crashlen", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"], report["failed"]
    operations: list[str] = report["operations"]
    return operations


def inventory(ctx: AwsContext) -> dict[str, set[str]]:
    """What exists on the moto server, kind by kind, read with plain AWS describes (not the kinds' own
    `list_owned`). Resources whose name or path AWS keeps unique are taken by the cluster's name or tag: they
    cannot exist twice. The others are taken whoever owns them, tagged or not: the test diffs two inventories
    (this worker's moto server serves one test at a time), so an untagged orphan left by the kill shows too.
    Left out: what AWS makes by itself (a VPC's default group and main route table, instances an Auto Scaling
    group launches and their root volumes) and what is gone (terminated, deleted)."""
    cluster, prefix = ctx.cluster, f"/kubeaws/{ctx.cluster}/"
    ec2 = partial(ctx.call, "ec2")

    def ids(operation: str, key: str, id_key: str, keep: Any = lambda _: True, **params: Any) -> set[str]:
        return {str(i[id_key]) for i in ec2(operation, **params)[key] if keep(i)}

    tagged = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]
    instances = [i for r in ec2("describe_instances")["Reservations"] for i in r["Instances"]]
    return {
        "Vpc": ids("describe_vpcs", "Vpcs", "VpcId"),
        "Subnet": ids("describe_subnets", "Subnets", "SubnetId"),
        "InternetGateway": ids("describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        "RouteTable": ids("describe_route_tables", "RouteTables", "RouteTableId",
                          lambda t: not any(a.get("Main") for a in t.get("Associations") or [])),
        "SecurityGroup": ids("describe_security_groups", "SecurityGroups", "GroupId",
                             lambda g: g["GroupName"] != "default"),
        "ElasticIp": ids("describe_addresses", "Addresses", "AllocationId"),
        "NatGateway": ids("describe_nat_gateways", "NatGateways", "NatGatewayId", lambda n: n["State"] != "deleted"),
        "Instance": {i["InstanceId"] for i in instances if i["State"]["Name"] != "terminated"
                     and "aws:autoscaling:groupName" not in tag_dict(i.get("Tags"))},
        "Volume": ids("describe_volumes", "Volumes", "VolumeId", lambda v: not v.get("Attachments")),
        "LaunchTemplate": ids("describe_launch_templates", "LaunchTemplates", "LaunchTemplateId", Filters=tagged),
        "AutoScalingGroup": {g["AutoScalingGroupName"] for g in ctx.call(
            "autoscaling", "describe_auto_scaling_groups", Filters=tagged)["AutoScalingGroups"]},
        "LoadBalancer": {lb["LoadBalancerArn"] for lb in ctx.call("elbv2", "describe_load_balancers")["LoadBalancers"]
                         if lb["LoadBalancerName"].startswith(f"{cluster}-")},
        "TargetGroup": {tg["TargetGroupArn"] for tg in ctx.call("elbv2", "describe_target_groups")["TargetGroups"]
                        if tg["TargetGroupName"].startswith(f"{cluster}-")},
        # moto ignores PathPrefix in ListInstanceProfiles: the path is checked here.
        "IamRole": {r["Arn"] for r in ctx.call("iam", "list_roles", PathPrefix=prefix)["Roles"] if r["Path"] == prefix},
        "InstanceProfile": {p["Arn"] for p in ctx.call("iam", "list_instance_profiles",
                                                       PathPrefix=prefix)["InstanceProfiles"] if p["Path"] == prefix},
        "Bucket": {b["Name"] for b in ctx.call("s3", "list_buckets")["Buckets"]
                   if b["Name"].startswith(f"kubeaws-{cluster}-")},
    }


def new_since(before: dict[str, set[str]], ctx: AwsContext) -> dict[str, int]:
    """How many resources of each kind exist now that did not before."""
    return {kind: len(now - before[kind]) for kind, now in inventory(ctx).items()}


@pytest.mark.parametrize("sample", range(SAMPLES))
def test_killed_apply_then_reapply_converges(moto_server: str, full_apply: list[str], sample: int) -> None:
    k = 1 + round(sample * (len(full_apply) - 1) / (SAMPLES - 1))
    cluster = f"crash{sample}"
    before = inventory(make_ctx(moto_server, cluster))
    killed = run_child(moto_server, cluster, k)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stdout, killed.stderr[-3000:])
    # The same call as in the complete run: the crash point is deterministic.
    assert f"killed after mutating call {k}: {full_apply[k - 1]}\n" in killed.stderr, killed.stderr[-3000:]

    spec, ctx = ha_spec(cluster), make_ctx(moto_server, cluster)
    graph = build(spec)
    again = api.apply(spec, ctx)
    assert again.ok, [(e.key, e.error) for e in again.failed + again.skipped]
    assert api.plan(spec, ctx).pending == 0  # a duplicate found by its tags would be planned for deletion
    made = new_since(before, ctx)  # and one left untagged by the kill shows here
    assert made == {kind: len(graph.of_kind(kind)) for kind in made}, killed.stderr

    deleted = api.delete(spec, ctx)
    assert deleted.ok, [(e.key, e.error) for e in deleted.failed]
    assert all(not kind.list_owned(ctx) for kind in registry.kinds().values())
    assert new_since(before, ctx) == dict.fromkeys(made, 0), killed.stderr


class Flaky:
    """`before-send` hook answering every 3rd EC2 request with Throttling or 503 instead of sending it."""

    def __init__(self) -> None:
        self.n = 0
        self.injected = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self.lock:
            self.n += 1
            if self.n % 3:
                return None
            self.injected += 1
            throttle = self.injected % 2 == 1
        body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                b"</Message></Error></Errors><RequestID>x</RequestID></Response>") if throttle else b""
        return AWSResponse(request.url, 400 if throttle else 503, {}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_throttling_and_5xx_are_retried(ctx: AwsContext) -> None:
    flaky = Flaky()
    ctx.add_hook("before-send.ec2", flaky)
    result = api.apply(SPEC, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert flaky.injected > 10
    assert api.plan(SPEC, ctx).pending == 0
    assert api.delete(SPEC, ctx).ok
