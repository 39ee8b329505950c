"""A flaky network never fails an apply or a delete (issue #10, item 1).

- Unit level: every class of error (aws/errors.py), which mutations may be sent again, which answers mean
  "already as wanted", and what `call_with_retry` does with each (fake calls, no network).
- Through tests/faulty_proxy.py in front of the moto server: lost answers to creates that AWS has no token
  for (CreateVpc, AllocateAddress...) leave exactly one resource; "already as wanted" answers (a duplicate
  rule, the role already in its instance profile, a missing resource on delete) are success; and a real
  example spec applies and deletes in ONE command each while 5% of the answers are lost (half before the
  request reaches moto, half after: the ambiguous half), or while 5xx and throttling are mixed in. After the
  apply a re-plan has nothing pending and every kind exists exactly as many times as the spec says, read
  with plain describes (tests/test_faults.py `inventory`); after the delete nothing is left.

Runs with one executor worker are deterministic: the proxy's schedule gives the n-th request the same fault
on every run, and one worker sends the same requests in the same order. The HA run uses the default pool.

moto adaptations (in the proxy, not in kubeaws): moto ignores ClientToken on CreateVolume, CreateNatGateway
and RunInstances, so the proxy answers a repeated EC2 token with the first answer, as AWS does; and moto
fails with an HTML 500 on RemoveRoleFromInstanceProfile of a role no longer in the profile, where AWS says
NoSuchEntity, so the proxy says NoSuchEntity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from kubeaws import api
from kubeaws.aws.errors import AmbiguousOutcome, ErrorClass, already_done, classify, repeatable
from kubeaws.aws.retry import FAST_POLICY, call_with_retry
from kubeaws.aws.session import AwsContext
from kubeaws.model import build
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from kubeaws.spec.load import load_spec
from kubeaws.spec.models import ClusterSpec
from tests.conftest import EXAMPLES, make_ctx
from tests.faulty_proxy import FaultRates, FaultyProxy
from tests.test_faults import inventory, new_since


def client_error(code: str, status: int = 400, operation: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       operation)


# -- one module classifies ------------------------------------------------------------------------------
@pytest.mark.parametrize(("exc", "expected"), [
    (client_error("RequestLimitExceeded", 503), ErrorClass.THROTTLED),
    (client_error("Throttling"), ErrorClass.THROTTLED),
    (client_error("SlowDown", 503), ErrorClass.THROTTLED),
    (EndpointConnectionError(endpoint_url="http://x"), ErrorClass.UNSENT),
    (ConnectTimeoutError(endpoint_url="http://x"), ErrorClass.UNSENT),
    (ConnectionClosedError(endpoint_url="http://x"), ErrorClass.AMBIGUOUS),
    (ReadTimeoutError(endpoint_url="http://x"), ErrorClass.AMBIGUOUS),
    (client_error("InternalError", 500), ErrorClass.AMBIGUOUS),
    (client_error("503", 503), ErrorClass.AMBIGUOUS),
    (client_error("InvalidVpcID.NotFound"), ErrorClass.NOT_FOUND),
    (client_error("NoSuchEntity", 404), ErrorClass.NOT_FOUND),
    (client_error("ResourceNotFoundException"), ErrorClass.NOT_FOUND),
    (client_error("InvalidParameterValue").__class__(
        {"Error": {"Code": "InvalidParameterValue", "Message": "Value (p) for parameter iamInstanceProfile.name "
                   "is invalid. Invalid IAM Instance Profile name"}}, "RunInstances"), ErrorClass.NOT_YET_VISIBLE),
    (client_error("DependencyViolation"), ErrorClass.IN_USE),
    (client_error("ResourceInUseException"), ErrorClass.IN_USE),
    (client_error("DeleteConflict", 409), ErrorClass.IN_USE),
    (client_error("EntityAlreadyExists", 409), ErrorClass.ALREADY_EXISTS),
    (client_error("InvalidGroup.Duplicate"), ErrorClass.ALREADY_EXISTS),
    (client_error("AccessDenied", 403), ErrorClass.ACCESS_DENIED),
    (client_error("UnauthorizedOperation", 403), ErrorClass.ACCESS_DENIED),
    (client_error("InvalidParameterCombination"), ErrorClass.OTHER),
    (ValueError("not AWS"), ErrorClass.OTHER),
    (AmbiguousOutcome("CreateVpc", ConnectionClosedError(endpoint_url="http://x")), ErrorClass.AMBIGUOUS),
], ids=lambda v: getattr(v, "value", None) or type(v).__name__)
def test_every_error_has_one_class(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected


@pytest.mark.parametrize(("operation", "code", "done"), [
    ("authorize_security_group_ingress", "InvalidPermission.Duplicate", True),
    ("revoke_security_group_ingress", "InvalidPermission.NotFound", True),
    ("add_role_to_instance_profile", "LimitExceeded", True),
    ("create_route", "RouteAlreadyExists", True),
    ("create_bucket", "BucketAlreadyOwnedByYou", True),
    ("create_bucket", "BucketAlreadyExists", False),  # someone else's bucket
    ("delete_vpc", "InvalidVpcID.NotFound", True),
    ("release_address", "InvalidAllocationID.NotFound", True),
    ("delete_role", "NoSuchEntity", True),
    ("create_vpc", "InvalidVpcID.NotFound", False),
    ("delete_vpc", "DependencyViolation", False),
    ("authorize_security_group_ingress", "InvalidGroup.NotFound", False),
])
def test_already_as_wanted_answers(operation: str, code: str, done: bool) -> None:
    assert already_done(client_error(code), operation) is done


@pytest.mark.parametrize(("operation", "params", "expected"), [
    ("create_vpc", {}, False),
    ("allocate_address", {}, False),
    ("create_subnet", {}, False),
    ("create_key", {}, False),
    ("run_instances", {"ClientToken": "t"}, True),
    ("create_nat_gateway", {"ClientToken": "t"}, True),
    ("create_nodegroup", {"clientRequestToken": "t"}, True),
    ("create_role", {}, True),  # a unique name: the repeat answers EntityAlreadyExists, the kind adopts
    ("create_security_group", {}, True),
    ("authorize_security_group_ingress", {}, True),
    ("delete_vpc", {}, True),
    ("put_bucket_policy", {}, True),
])
def test_which_mutations_may_be_sent_again(operation: str, params: dict[str, Any], expected: bool) -> None:
    assert repeatable(operation, params) is expected


class Script:
    """A fake AWS call answering from a list: exceptions are raised, anything else returned."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


POLICY = FAST_POLICY
DROPPED = ConnectionClosedError(endpoint_url="http://aws")


def no_sleep(_: float) -> None:
    return None


def test_a_read_is_retried_on_dropped_connections_timeouts_and_5xx() -> None:
    fn = Script(DROPPED, ReadTimeoutError(endpoint_url="x"), client_error("InternalError", 500),
                client_error("Throttling"), {"Vpcs": []})
    assert call_with_retry(fn, "DescribeVpcs", POLICY, no_sleep) == {"Vpcs": []}
    assert fn.calls == 5


def test_a_create_without_token_is_not_sent_twice_after_a_lost_answer() -> None:
    fn = Script(DROPPED, {"Vpc": {}})
    with pytest.raises(AmbiguousOutcome) as err:
        call_with_retry(fn, "CreateVpc", POLICY, no_sleep, mutating=True, repeatable=False)
    assert fn.calls == 1 and err.value.cause is DROPPED


def test_a_create_without_token_is_retried_when_nothing_was_sent_or_it_was_throttled() -> None:
    fn = Script(EndpointConnectionError(endpoint_url="x"), client_error("RequestLimitExceeded", 503), {"Vpc": {}})
    assert call_with_retry(fn, "CreateVpc", POLICY, no_sleep, mutating=True, repeatable=False) == {"Vpc": {}}


def test_a_repeatable_mutation_is_sent_again_and_already_so_is_success() -> None:
    def already(exc: BaseException) -> dict[str, Any] | None:
        return {} if already_done(exc, "AuthorizeSecurityGroupIngress") else None

    fn = Script(DROPPED, client_error("InvalidPermission.Duplicate"))
    assert call_with_retry(fn, "AuthorizeSecurityGroupIngress", POLICY, no_sleep, mutating=True,
                           already=already) == {}
    # Without a lost answer first, the same answer is the caller's to judge.
    fn = Script(client_error("InvalidPermission.Duplicate"))
    with pytest.raises(ClientError):
        call_with_retry(fn, "AuthorizeSecurityGroupIngress", POLICY, no_sleep, mutating=True, already=already)


def test_a_5xx_after_a_create_is_ambiguous() -> None:
    fn = Script(client_error("InternalError", 500))
    with pytest.raises(AmbiguousOutcome):
        call_with_retry(fn, "AllocateAddress", POLICY, no_sleep, mutating=True, repeatable=False)


# -- through the faulty proxy ---------------------------------------------------------------------------
@pytest.fixture
def proxied(endpoint: str) -> Iterator[Callable[..., tuple[FaultyProxy, AwsContext]]]:
    """Start a proxy (rates, seed, targeted faults) in front of the reset moto server; a context through it."""
    started: list[FaultyProxy] = []

    def start(cluster: str, **kw: Any) -> tuple[FaultyProxy, AwsContext]:
        proxy = FaultyProxy(endpoint, **kw).start()
        started.append(proxy)
        return proxy, make_ctx(proxy.url, cluster)

    yield start
    for proxy in started:
        proxy.stop()


def counts(ctx: AwsContext, spec: ClusterSpec, before: dict[str, set[str]]) -> tuple[dict[str, int], dict[str, int]]:
    """What exists of each kind that did not before (plain describes), and what the spec asks for."""
    graph = build(spec)
    made = new_since(before, ctx)
    return made, {kind: len(graph.of_kind(kind)) for kind in made}


def test_lost_answers_to_creates_without_token_make_no_second_resource(proxied: Any, endpoint: str) -> None:
    """CreateVpc, AllocateAddress, CreateInternetGateway, CreateSubnet have no ClientToken: their answers
    are lost after moto acted; each is found by its tags and adopted, never created twice."""
    spec = load_spec(EXAMPLES / "dev.yaml")
    direct = make_ctx(endpoint, spec.metadata.name)
    before = inventory(direct)
    lost: list[str | None] = ["drop-after"]
    proxy, ctx = proxied(spec.metadata.name, targeted={
        "CreateVpc": lost, "AllocateAddress": lost, "CreateInternetGateway": lost, "CreateSubnet": lost,
        "CreateSecurityGroup": lost, "CreateRole": lost, "AuthorizeSecurityGroupIngress": lost,
        "CreateBucket": lost, "AddRoleToInstanceProfile": lost, "RunInstances": lost})
    result = api.apply(spec, ctx, max_workers=1)
    assert result.ok, [(e.key, e.error) for e in result.failed + result.skipped]
    assert proxy.stats.faults["drop-after"] == 10, proxy.stats.log
    assert api.plan(spec, direct).pending == 0
    made, wanted = counts(direct, spec, before)
    assert made == wanted and made["Vpc"] == 1 and made["ElasticIp"] >= 1


def test_already_as_wanted_answers_are_success(proxied: Any, endpoint: str) -> None:
    proxy, ctx = proxied("dev", targeted={"AuthorizeSecurityGroupIngress": ["drop-after"],
                                         "DeleteSecurityGroup": ["drop-after"]})
    vpc = ctx.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ctx.call("ec2", "create_security_group", GroupName="g", Description="d", VpcId=vpc)["GroupId"]
    rule = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    # The first answer is lost after moto added the rule; the repeat's InvalidPermission.Duplicate is success.
    assert ctx.call("ec2", "authorize_security_group_ingress", GroupId=group, IpPermissions=rule) == {}
    # The same for a delete: the repeat's InvalidGroup.NotFound means deleted.
    assert ctx.call("ec2", "delete_security_group", GroupId=group) == {}
    assert proxy.stats.faults["drop-after"] == 2

    # The role is already the one in its profile (an earlier run): LimitExceeded is success.
    profiles = registry.get("InstanceProfile")
    trust = '{"Version":"2012-10-17","Statement":[]}'
    for role in ("dev-r", "dev-other"):
        ctx.call("iam", "create_role", RoleName=role, Path="/kubeaws/dev/", AssumeRolePolicyDocument=trust)
    ctx.call("iam", "create_instance_profile", InstanceProfileName="dev-p", Path="/kubeaws/dev/")
    ctx.call("iam", "add_role_to_instance_profile", InstanceProfileName="dev-p", RoleName="dev-r")
    actual = Observed("InstanceProfile", "dev-p", {"role_name": None})
    done = profiles.update(ctx, actual, Desired("InstanceProfile", "p", {"role_name": "dev-r"}),
                           {"role_name": (None, "dev-r")})
    assert done.fields["role_name"] == "dev-r"
    # Another role in it is not "as wanted".
    with pytest.raises(ClientError) as err:
        profiles.update(ctx, actual, Desired("InstanceProfile", "p", {"role_name": "dev-other"}),
                        {"role_name": (None, "dev-other")})
    assert err.value.response["Error"]["Code"] == "LimitExceeded"


def converge_through(proxied: Any, endpoint: str, spec: ClusterSpec, workers: int, **proxy_kw: Any) -> FaultyProxy:
    """Apply, check, delete, check: both through the proxy, each ONE command. Returns the proxy."""
    cluster = spec.metadata.name
    direct = make_ctx(endpoint, cluster)
    before = inventory(direct)
    proxy, ctx = proxied(cluster, **proxy_kw)
    result = api.apply(spec, ctx, max_workers=workers)
    assert result.ok, ([(e.key, e.error) for e in result.failed + result.skipped], proxy.stats.log)
    assert api.plan(spec, direct).pending == 0
    made, wanted = counts(direct, spec, before)
    assert made == wanted, proxy.stats.log
    deleted = api.delete(spec, ctx, max_workers=workers)
    assert deleted.ok, ([(e.key, e.error) for e in deleted.failed], proxy.stats.log)
    assert all(not kind.list_owned(direct) for kind in registry.kinds().values())
    assert set(counts(direct, spec, before)[0].values()) == {0}
    used: FaultyProxy = proxy
    return used


@pytest.mark.parametrize("seed", [1, 2])
def test_dev_applies_and_deletes_first_time_losing_5_percent_of_answers(proxied: Any, endpoint: str,
                                                                       seed: int) -> None:
    proxy = converge_through(proxied, endpoint, load_spec(EXAMPLES / "dev.yaml"), 1,
                             rates=FaultRates.dropping(0.05), seed=seed)
    assert proxy.stats.faults["drop-before"] and proxy.stats.faults["drop-after"], proxy.stats.faults


def test_ha_applies_and_deletes_first_time_with_drops_5xx_and_throttling(proxied: Any, endpoint: str) -> None:
    rates = FaultRates(drop_before=0.015, drop_after=0.015, error_500=0.01, forward_500=0.01, throttle=0.01)
    proxy = converge_through(proxied, endpoint, load_spec(EXAMPLES / "ha.yaml"), 8, rates=rates, seed=3)
    assert len(proxy.stats.faults) == 5, proxy.stats.faults
