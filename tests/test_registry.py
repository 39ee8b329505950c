"""Registry-wide invariants, checked for EVERY registered resource kind (cloud-custodian style): it declares
its metadata (consistent, and its immutable / refuse-change props pinned), the props it declares are props
the model sets, the model only uses registered kinds, each kind finds its resources by the cluster's tags
with a single describe call, its found fields diff clean against the spec, and its delete removes them.
The behaviour behind the declarations is proven per kind in tests/test_kinds_contract.py."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from kubeaws import api
from kubeaws.aws.session import AwsContext, is_read_operation
from kubeaws.aws.tags import CLUSTER_TAG, RESOURCE_TAG
from kubeaws.model import build
from kubeaws.resources import registry
from kubeaws.resources.base import Kind
from tests.helpers import make_spec

FULL = make_spec(network={"natGateway": "perAZ"}, access={"bastion": {"elasticIP": True}})
KINDS = sorted(registry.kinds())
SERVICES = {"ec2", "elbv2", "autoscaling", "iam", "s3", "kms", "eks"}


def test_every_module_registers_a_kind() -> None:
    assert len(KINDS) == len(registry.MODULES)


#: Each kind's (immutable, refuse_change) props, pinned. Dropping a prop from `immutable` turns the replacement
#: a plan must show into an in-place update AWS refuses (or a change nobody applies); dropping one from
#: `refuse_change` lets a plan replace what everything else is built on (a VPC, an etcd volume, the secrets
#: key). A change here goes with the reason in the kind's module; tests/test_kinds_contract.py then proves,
#: against the moto server, that changing each of these props plans a replace or is refused.
DECLARED: dict[str, tuple[set[str], set[str]]] = {
    "AccessEntry": (set(), {"cluster_name", "principal_arn", "type"}),
    "AutoScalingGroup": ({"name"}, set()),
    "Bucket": ({"name"}, {"name"}),
    "ClusterPki": ({"bucket", "prefix"}, set()),
    "EksAddon": (set(), {"cluster_name", "addon_name"}),
    "EksCluster": (set(), {"name", "role_arn", "encryption_key_arn", "service_cidr"}),
    "EksNodegroup": ({"nodegroup_name"}, {"cluster_name", "node_role_arn", "subnet_ids", "capacity_type",
                                           "instance_types", "launch_template_id"}),
    "ElasticIp": ({"domain"}, set()),
    "IamRole": ({"name", "path"}, set()),
    "Instance": ({"image_id", "instance_type", "subnet_id", "key_name", "iam_instance_profile"}, set()),
    "InstanceProfile": ({"name", "path"}, set()),
    "InternetGateway": (set(), set()),
    "KmsKey": (set(), {"alias"}),
    "KubernetesObject": ({"cluster_name"}, set()),
    "LaunchTemplate": ({"name"}, set()),
    "Listener": ({"load_balancer_arn"}, set()),
    "LoadBalancer": ({"name", "scheme", "type"}, set()),
    "NatGateway": ({"subnet_id", "allocation_id", "connectivity_type"}, set()),
    "NetworkInterface": ({"subnet_id"}, set()),
    "OidcProvider": ({"url"}, set()),
    "RouteTable": ({"vpc_id"}, set()),
    "SecurityGroup": ({"vpc_id", "group_name", "description"}, set()),
    "SecurityGroupRules": ({"group_id"}, set()),
    "StateObject": ({"bucket", "key"}, set()),
    "Subnet": ({"vpc_id", "cidr_block", "availability_zone"}, set()),
    "TargetGroup": ({"name", "port", "protocol", "vpc_id", "target_type"}, set()),
    "Volume": ({"availability_zone", "encrypted"}, {"availability_zone", "encrypted"}),
    "Vpc": ({"cidr_block"}, {"cidr_block"}),
}
#: Keys a kind's `diff` reports although no prop carries them (a refused part of a prop).
DERIVED = {"EksNodegroup": {"launch_template_id"}}  # the `id` of `launch_template`, without a rename
#: Specs that between them make every kind the model builds (kubeadm HA and single private, EKS API and
#: CONFIG_MAP authentication with the cluster-autoscaler's Kubernetes objects).
SPECS = [FULL, make_spec(controlPlane={"count": 3}, access={"bastion": {"elasticIP": True}}),
         make_spec(controlPlane={"count": 1}, access={"apiEndpoint": "private"}),
         make_spec(mode="eks", network={"cni": "aws-vpc-cni"}, eks={"authenticationMode": "API"},
                   nodeGroups=[{"name": "general", "instanceTypes": ["m5.large"]},
                               {"name": "managed", "type": "managed", "instanceTypes": ["t3.large"]}]),
         make_spec(mode="eks", network={"cni": "aws-vpc-cni"}, eks={"authenticationMode": "CONFIG_MAP"},
                   addons={"clusterAutoscaler": {}})]


@functools.cache
def model_props() -> dict[str, dict[str, list[Any]]]:
    """kind -> prop -> the values the model gives it, over SPECS."""
    found: dict[str, dict[str, list[Any]]] = {}
    for spec in SPECS:
        for desired in build(spec):
            for key, value in desired.props.items():
                found.setdefault(desired.kind, {}).setdefault(key, []).append(value)
    return found


def test_declarations_are_pinned_for_every_kind() -> None:
    assert set(DECLARED) == set(KINDS), "pin the new kind's immutable / refuse_change props in DECLARED"


@pytest.mark.parametrize("name", KINDS)
def test_kind_declares_its_metadata(name: str) -> None:
    kind = registry.get(name)
    assert isinstance(kind, Kind) and not inspect.isabstract(type(kind))
    assert kind.kind == name and isinstance(kind.rank, int) and kind.service in SERVICES
    assert type(kind).__doc__ and inspect.getmodule(type(kind)).__doc__  # type: ignore[union-attr]
    for attr in ("immutable", "refuse_change", "unobservable", "set_fields", "broken_states", "gone_states",
                 "modes"):
        value = getattr(kind, attr)
        assert isinstance(value, frozenset) and all(isinstance(v, str) and v for v in value), (name, attr)
    assert kind.modes and kind.modes <= {"kubeadm", "eks"}
    assert (set(kind.immutable), set(kind.refuse_change)) == DECLARED.get(name), name
    # An unobservable prop is never diffed: declaring it immutable, refused or a set would mean nothing.
    assert not kind.unobservable & (kind.immutable | kind.refuse_change | kind.set_fields), name
    # What `update` can change in place is not what forces a replacement.
    assert not set(getattr(kind, "updatable", frozenset())) & (kind.immutable | kind.refuse_change), name
    # A found resource in a broken state is replaced, in a gone state ignored: never both.
    assert not kind.broken_states & kind.gone_states, name
    # The AWS name of a resource: a rename is a replacement (docs of Kind.name_field).
    assert kind.name_field is None or kind.name_field in kind.immutable, name
    assert 1 <= kind.list_reads <= 20, name


@pytest.mark.parametrize("name", KINDS)
def test_declared_props_are_props_the_model_sets(name: str) -> None:
    """Every prop a kind declares immutable, refused, unobservable or a set is one the model builds that kind
    with (a misspelt declaration would silently protect nothing); set props are lists."""
    kind = registry.get(name)
    props = model_props().get(name)
    assert props is not None, f"no spec in SPECS builds a {name}: add one"
    declared = kind.immutable | kind.refuse_change | kind.unobservable
    assert not declared - set(props) - DERIVED.get(name, set()), sorted(declared - set(props))
    for key in kind.set_fields & set(props):
        assert all(isinstance(v, list) for v in props[key]), (name, key)


def test_model_uses_only_registered_kinds() -> None:
    graph = build(FULL)
    for desired in graph:
        registry.get(desired.kind)  # raises for an unknown kind
        for dep in desired.refs():
            assert dep in graph


def test_every_kind_finds_diffs_and_deletes_itself(ctx: AwsContext) -> None:
    graph = build(FULL)
    result = api.apply(FULL, ctx)
    assert result.ok, [(e.key, e.error) for e in result.failed]
    state = api.plan_state(FULL, ctx)
    for name in KINDS:
        kind = registry.get(name)
        with ctx.counting() as log:
            found = kind.list_owned(ctx)
        reads = sum(n for (_, op), n in log.snapshot().items() if is_read_operation(op))
        if not kind.served(ctx):  # the addons' Kubernetes objects: no Kubernetes API on the emulator
            assert found == [] and reads == 0 and log.mutating() == 0, name
            continue
        assert 1 <= reads <= kind.list_reads, (name, log.snapshot())
        assert log.mutating() == 0
        assert {o.logical_key for o in found} == {d.key for d in graph.of_kind(name)}, name
        for o in found:
            assert o.tags[CLUSTER_TAG] == "dev" and o.tags[RESOURCE_TAG].startswith(f"{name}/"), o.id
    assert state.plan.pending == 0
    deleted = api.delete(FULL, ctx)
    assert deleted.ok
    for name in KINDS:
        assert registry.get(name).list_owned(ctx) == [], name
