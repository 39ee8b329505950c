"""Delete on the dependency graph (engine.delete_order, engine.schedule): on the moto server, examples/ha.yaml
(eleven Auto Scaling groups, an NLB, a NAT gateway per AZ, a bastion with its Elastic IP) is applied, then
deleted while every AWS call (botocore before-call / after-call) and every deletion's start and end are
recorded in one sequence. Each deletion must start only after every resource that AWS requires gone first is
gone — the rules below are this test's own, written from AWS semantics, not the engine's — and nothing may be
left. A deletion failing leaves what waits for it and lets the rest go; a second delete finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kubeaws import api
from kubeaws.aws.retry import FAST_POLICY
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.engine import apply as engine_apply
from kubeaws.engine import delete_order
from kubeaws.engine.observe import observe
from kubeaws.engine.types import Change, Event
from kubeaws.resources import controller_made, registry
from kubeaws.resources.base import Kind, Observed, walk
from kubeaws.resources.controller_made import ControllerKind
from kubeaws.spec.models import ClusterSpec
from tests.conftest import EXAMPLES
from tests.test_graph import deleted_before

#: (kind deleted later, kind deleted first, how): "named" when the first names the later one (an ID or ARN in
#: its attributes), "all" when every resource of the first kind must be gone (AWS refuses otherwise).
#: Not here: an Elastic IP and the instance it is associated with (the bastion's): ElasticIp's delete
#: disassociates before it releases, so AWS needs neither order; the model's edge puts the address first.
MUST_WAIT = [
    ("Subnet", "Instance", "named"), ("Subnet", "NatGateway", "named"), ("Subnet", "LoadBalancer", "named"),
    ("Subnet", "RouteTable", "named"), ("Subnet", "AutoScalingGroup", "named"),
    ("Vpc", "Subnet", "named"), ("Vpc", "SecurityGroup", "named"), ("Vpc", "InternetGateway", "named"),
    ("Vpc", "RouteTable", "named"), ("Vpc", "TargetGroup", "named"),
    ("SecurityGroup", "Instance", "named"), ("SecurityGroup", "LoadBalancer", "named"),
    ("SecurityGroup", "SecurityGroupRules", "named"), ("SecurityGroup", "AutoScalingGroup", "all"),
    ("ElasticIp", "NatGateway", "named"),
    ("InternetGateway", "RouteTable", "named"), ("InternetGateway", "NatGateway", "all"),
    ("InternetGateway", "Instance", "all"),
    ("LoadBalancer", "Listener", "named"), ("TargetGroup", "Listener", "named"),
    ("TargetGroup", "AutoScalingGroup", "named"), ("LaunchTemplate", "AutoScalingGroup", "named"),
    ("Volume", "AutoScalingGroup", "all"),
    ("IamRole", "InstanceProfile", "named"), ("InstanceProfile", "AutoScalingGroup", "all"),
    ("Bucket", "StateObject", "named"), ("Bucket", "ClusterPki", "named"), ("Bucket", "AutoScalingGroup", "all"),
]


DELETE_OPS = ("Delete", "Terminate", "Release")


def strings(obs: Observed) -> set[str]:
    found: set[str] = set()
    walk([obs.fields, obs.attrs], lambda v: found.add(v) if isinstance(v, str) else None)
    return found


def required(before: list[Observed]) -> list[tuple[Observed, Observed]]:
    """(later, first) pairs: `later`'s deletion must wait until `first` is gone."""
    pairs = []
    for later_kind, first_kind, how in MUST_WAIT:
        for later in (o for o in before if o.kind == later_kind):
            names = {later.id, later.attrs.get("arn")}
            for first in (o for o in before if o.kind == first_kind and o.id != later.id):
                if how == "all" or names & strings(first):
                    pairs.append((later, first))
    return pairs


class Recorder:
    """One sequence of AWS calls (start/end) and deletion events, thread-safe."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()

    def before(self, model: Any, params: Any, **_: Any) -> None:
        with self.lock:
            self.log.append(("call", model.name, params.get("body", {}) if isinstance(params, dict) else {}))

    def after(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.log.append(("end", model.name, None))

    def event(self, event: Event) -> None:
        with self.lock:
            self.log.append((event.state, f"{event.kind}/{event.id}", event.error))

    def index(self, state: str, kind: str, rid: str) -> int:
        return next(i for i, (s, key, _) in enumerate(self.log) if s == state and key == f"{kind}/{rid}")


def leftovers(ctx: AwsContext) -> list[str]:
    obs = observe(ctx, None, every_kind=True, controller_made_too=True)
    return [f"{o.kind}/{o.id}" for o in obs.all_owned() + obs.all_controller_made()]


@pytest.fixture
def ha(endpoint: str) -> Iterator[tuple[ClusterSpec, AwsContext]]:
    spec = api.load_spec(EXAMPLES / "ha.yaml")
    ctx = AwsContext(AwsSettings(region=spec.spec.region, endpoint_url=endpoint), cluster=spec.metadata.name,
                     policy=FAST_POLICY)
    result = api.apply(spec, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    yield spec, ctx


def test_each_deletion_starts_after_what_depends_on_it_is_gone(ha: tuple[ClusterSpec, AwsContext]) -> None:
    spec, ctx = ha
    report = api.status(spec, ctx, every_kind=True)
    before = report.resources
    rec = Recorder()
    ctx.add_hook("before-call", rec.before)
    ctx.add_hook("after-call", rec.after)
    result = api.delete(spec, ctx, on_event=rec.event, observation=report.observation)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    assert leftovers(ctx) == []
    pairs = required(before)
    assert len(pairs) > 100  # the rules above did find what they are about
    checked_calls = 0
    for later, first in pairs:
        started = rec.index("started", later.kind, later.id)
        gone = rec.index("done", first.kind, first.id)
        assert gone < started, f"{later.kind} {later.id} started before {first.kind} {first.id} was gone"
        # ... and the AWS deletion of `later` (a Delete/Terminate/Release call with its ID as a parameter) is
        # sent after `first`'s last call returned.
        deleting = [i for i, (s, op, body) in enumerate(rec.log)
                    if s == "call" and op.startswith(DELETE_OPS) and isinstance(body, dict)
                    and later.id in body.values()]
        assert all(i > gone for i in deleting), f"{later.id} deleted before {first.kind} {first.id} was gone"
        checked_calls += len(deleting)
    assert checked_calls > 100
    # The delete overlaps: calls of different deletions are in flight at the same time (no one-at-a-time run).
    depth = peak = 0
    for state, _, _ in rec.log:
        depth += {"call": 1, "end": -1}.get(state, 0)
        peak = max(peak, depth)
    assert peak > 1


def test_the_graph_follows_references_not_rank_waves(ha: tuple[ClusterSpec, AwsContext]) -> None:
    spec, ctx = ha
    obs = api.status(spec, ctx, every_kind=True).observation
    assert obs is not None
    deletes = [Change("delete", o.kind, o.id, o.id, {}, None, o) for o in obs.all_owned()]
    kinds: dict[str, Kind | ControllerKind] = {**registry.kinds(), **controller_made.kinds()}
    deps = delete_order.waits_for(deletes, lambda kind: kinds[kind].rank)
    by_kind: dict[str, list[Observed]] = {}
    for o in obs.all_owned():
        by_kind.setdefault(o.kind, []).append(o)
    nat_subnets = {n.fields["subnet_id"] for n in by_kind["NatGateway"]}
    public = [s for s in by_kind["Subnet"] if s.id in nat_subnets]
    for subnet in public:  # no Auto Scaling group names a public subnet: it does not wait for them
        assert not any(d.startswith("AutoScalingGroup/") for d in deps[f"Subnet/{subnet.id}"])
    for eip in by_kind["ElasticIp"]:  # an Elastic IP waits for its own NAT gateway only
        nats = {d for d in deps[f"ElasticIp/{eip.id}"] if d.startswith("NatGateway/")}
        assert len(nats) <= 1
    assert {d.split("/")[0] for d in deps[f"Vpc/{by_kind['Vpc'][0].id}"]} >= {"Subnet", "SecurityGroup",
                                                                            "InternetGateway", "RouteTable"}


def test_the_model_graph_edges_hold_on_what_aws_shows(ha: tuple[ClusterSpec, AwsContext]) -> None:
    """For every edge of the spec's graph (A depends on B), A's deletion is done before B's starts — on the
    resources as moto shows them, the bastion's Elastic IP (rank 20) before its instance (rank 50) and
    cluster.json (rank 17) before the API load balancer (rank 50) among them."""
    spec, ctx = ha
    obs = api.status(spec, ctx, every_kind=True).observation
    assert obs is not None
    graph = api.build(spec)
    deletes = [Change("delete", o.kind, o.id, o.id, {}, None, o) for o in obs.all_owned()]
    kinds = registry.kinds()
    deps = delete_order.waits_for(deletes, lambda kind: kinds[kind].rank, graph)
    of_key: dict[str, list[str]] = {}
    for o in obs.all_owned():
        of_key.setdefault(o.logical_key or "", []).append(f"{o.kind}/{o.id}")

    edges = [(a, b) for d in graph for dep in d.refs() for a in of_key.get(d.key, []) for b in of_key.get(dep, [])]
    assert len(edges) > 100
    broken = [(a, b) for a, b in edges if not deleted_before(deps, a, b)]
    assert broken == []
    eip = of_key["ElasticIp/bastion"][0]
    assert of_key["Instance/bastion"][0] in {k for k, before in deps.items() if eip in before}


def test_a_failed_deletion_leaves_its_dependencies_and_delete_again_finishes(
        ha: tuple[ClusterSpec, AwsContext]) -> None:
    spec, ctx = ha
    obs = api.status(spec, ctx, every_kind=True).observation
    assert obs is not None
    subnet = sorted(o.id for o in obs.owned["Subnet"])[0]
    vpc = obs.owned["Vpc"][0].id

    armed = [True]

    def refuse(params: Any, **_: Any) -> None:
        if armed[0] and params.get("body", {}).get("SubnetId") == subnet:
            raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "injected"}}, "DeleteSubnet")

    ctx.add_hook("before-call.ec2.DeleteSubnet", refuse)
    first = api.delete(spec, ctx, observation=obs)
    assert not first.ok
    failed = {(e.kind, e.id) for e in first.failed}
    assert failed == {("Subnet", subnet)}
    skipped = {(e.kind, e.id) for e in first.events if e.state == "skipped"}
    assert ("Vpc", vpc) in skipped  # what waits for the subnet stays
    done = {(e.kind, e.id) for e in first.done}
    assert {("Subnet", s.id) for s in obs.owned["Subnet"] if s.id != subnet} <= done  # the other subnets went
    assert ("AutoScalingGroup", obs.owned["AutoScalingGroup"][0].id) in done
    left = leftovers(ctx)
    assert f"Subnet/{subnet}" in left and f"Vpc/{vpc}" in left

    armed[0] = False
    second = api.delete(spec, ctx)
    assert second.ok, [(e.key, e.error) for e in second.failed]
    assert leftovers(ctx) == []


def test_delete_with_an_observation_does_not_read_the_cluster_again(
        ha: tuple[ClusterSpec, AwsContext], monkeypatch: pytest.MonkeyPatch) -> None:
    spec, ctx = ha
    report = api.status(spec, ctx, every_kind=True)

    def no_second_read(*_: Any, **__: Any) -> None:
        raise AssertionError("destroy read the cluster again")

    monkeypatch.setattr(engine_apply, "observe", no_second_read)
    result = api.delete(spec, ctx, observation=report.observation)
    assert result.ok and len(result.done) == len(report.resources)


class _Lock:
    def __init__(self, contended: bool) -> None:
        self.contended = contended

    def stop_renewing(self) -> None:
        pass


@pytest.mark.parametrize(("lock", "reused"), [(None, True), (_Lock(False), True), (_Lock(True), False)])
def test_cli_delete_reads_once_unless_it_waited_for_the_lock(monkeypatch: pytest.MonkeyPatch, lock: _Lock | None,
                                                             reused: bool) -> None:
    """`kubeaws delete` passes its preview's observation to the delete; it reads the cluster again only when
    another run held the lock between the preview and the delete (no AWS here: the API is stubbed)."""
    from contextlib import contextmanager

    from typer.testing import CliRunner

    from kubeaws.cli import locking
    from kubeaws.cli.main import app
    from kubeaws.engine.observe import Observation
    from kubeaws.engine.types import ApplyResult, StatusReport

    observation = Observation()
    given: list[Observation | None] = []

    def status(spec: ClusterSpec, ctx: AwsContext, **kw: Any) -> StatusReport:
        assert kw.get("every_kind") is True
        vpc = Observed("Vpc", "vpc-1", {}, {"kubeaws.io/resource": "Vpc/main"})
        return StatusReport(spec.metadata.name, [vpc], 0, {}, [], observation=observation)

    def delete(spec: ClusterSpec, ctx: AwsContext, **kw: Any) -> ApplyResult:
        given.append(kw.get("observation"))
        return ApplyResult(cluster=spec.metadata.name, operation="delete")

    @contextmanager
    def held(*_: Any, **__: Any) -> Iterator[_Lock | None]:
        yield lock

    monkeypatch.setattr(api, "status", status)
    monkeypatch.setattr(api, "delete", delete)
    monkeypatch.setattr(locking, "held", held)
    result = CliRunner().invoke(app, ["delete", "-f", str(EXAMPLES / "dev.yaml"), "--yes"])
    assert result.exit_code == 0, result.output
    assert given == [observation if reused else None]
