"""The resource-kind contract, proven for EVERY registered kind against the moto server (table-driven: a new kind
fails `test_every_kind_has_a_scenario_or_a_reason` until it has a scenario in tests/contract/, or a reason
in EXEMPT; a stale EXEMPT entry fails it too).

1. Delete absorbs in-use answers: each mutating call of a kind's delete (cleanup steps included: detaching,
   disassociating, revoking, emptying) is answered with each in-use error AWS documents for it, twice,
   before it goes through, and the delete still removes the resource. With the answer never changing, the
   delete gives up after its time budget (AWS's real budget, on a fake clock) with an error saying what it
   waited for, and the resource is still there. The in-use answers come from botocore's service models, or
   for EC2 and S3 (whose models document no errors) from tests/contract/harness.py's UNMODELED table.
2. Every prop a kind declares immutable, changed, plans a replacement; every refuse-change prop, changed,
   stops the plan with a message naming it. (The declarations themselves are pinned in test_registry.py.)
3. The create call carries exactly the desired tags (plus the kind's bookkeeping tags), and no tagging call
   follows it but completion markers; where the API cannot tag on create (S3 CreateBucket) the tagging call
   comes right after it; kinds without AWS tags make no tagging call. The resource is then found by its
   tags (`list_owned`).

Each test runs in a cluster of its own on the worker's moto server (no reset: names derive from the test
id), with the AwsContext's policy on a fake clock: no test sleeps for real.

moto adaptations (in the tests, never in production code): resources are ready and gone at once, so state
waits end on their first poll; moto deletes a security group still used by a network interface (the
security group scenario answers DependencyViolation then, as AWS does); access entries and add-ons are
missing from moto's EKS (FakeEks answers them); every moto EKS cluster has the same OIDC issuer (the OIDC
provider scenario gives its cluster one of its own); Auto Scaling groups are made without instances. Each
is described where it is made, in tests/contract/.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError

from kubeaws.aws.retry import RetriesExhausted, error_code
from kubeaws.aws.session import AwsContext
from kubeaws.engine.observe import Observation
from kubeaws.engine.plan import PlanError, make_plan
from kubeaws.engine.types import Change
from kubeaws.model.graph import Graph
from kubeaws.resources import registry
from kubeaws.resources.base import Desired, Observed
from tests.contract.harness import (
    IN_USE,
    TAG_CALLS,
    Call,
    InUseFaults,
    Scenario,
    contract_ctx,
    in_use_codes,
    record,
    tag_sets,
)
from tests.contract.scenarios import EXEMPT, SCENARIOS
from tests.helpers import FakeClock

KINDS = sorted(registry.kinds())
#: The kinds exercised here (the exempt ones are listed with their reason: no skipped test).
TESTED = [k for k in KINDS if k not in EXEMPT]
#: How many times each in-use answer is given before a call goes through.
TIMES = 2


def _codes_or_empty(call: Call) -> tuple[str, ...]:
    try:
        return in_use_codes(call)
    except KeyError:
        return ()  # test_delete_absorbs_in_use_answers reports the unclassified call


GIVE_UP = [(name, call) for name, s in sorted(SCENARIOS.items()) for call in s.delete_calls if _codes_or_empty(call)]


@pytest.fixture
def kctx(moto_server: str, request: pytest.FixtureRequest) -> tuple[AwsContext, FakeClock]:
    """A context for a cluster of this test's own on the moto server, its policy on a fake clock."""
    return contract_ctx(moto_server, "k" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10])


def scenario_for(name: str) -> Scenario:
    assert name in SCENARIOS, f"{name} has no contract scenario: add one in tests/contract/ (or a reason in EXEMPT)"
    return SCENARIOS[name]


def prepare(ctx: AwsContext, scenario: Scenario) -> Desired:
    if scenario.fakes is not None:
        scenario.fakes(ctx)
    return scenario.desired(ctx)


def found(ctx: AwsContext, desired: Desired) -> Observed | None:
    """The resource `list_owned` finds for `desired` (by its ownership tags), if any."""
    matches = [o for o in registry.get(desired.kind).list_owned(ctx) if o.logical_key == desired.key]
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


def created(ctx: AwsContext, scenario: Scenario) -> tuple[Desired, Observed]:
    """Create the scenario's resource and return it as found again, ready for its delete."""
    desired = prepare(ctx, scenario)
    registry.get(scenario.kind).create(ctx, desired)
    actual = found(ctx, desired)
    assert actual is not None, f"{desired.key} not found by its tags after create"
    if scenario.before_delete is not None:
        scenario.before_delete(ctx, actual)
        actual = found(ctx, desired)
        assert actual is not None
    return desired, actual


def test_every_kind_has_a_scenario_or_a_reason() -> None:
    assert not set(EXEMPT) - set(KINDS), f"EXEMPT names kinds that no longer exist: {sorted(set(EXEMPT) - set(KINDS))}"
    assert not set(SCENARIOS) - set(KINDS), sorted(set(SCENARIOS) - set(KINDS))
    assert not set(EXEMPT) & set(SCENARIOS), sorted(set(EXEMPT) & set(SCENARIOS))
    missing = set(KINDS) - set(SCENARIOS) - set(EXEMPT)
    assert not missing, f"kinds without a contract scenario nor a reason: {sorted(missing)}"
    assert all(s.kind == name for name, s in SCENARIOS.items())
    assert all(reason.strip() for reason in EXEMPT.values())


# -- 1. delete -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TESTED)
def test_delete_absorbs_in_use_answers(name: str, kctx: tuple[AwsContext, FakeClock]) -> None:
    scenario = scenario_for(name)
    ctx, _ = kctx
    desired, actual = created(ctx, scenario)
    codes = {call: in_use_codes(call) for call in scenario.delete_calls}
    faults = InUseFaults(codes, times=TIMES)
    ctx.add_hook("before-call", faults)
    calls = record(ctx)

    registry.get(name).delete(ctx, actual)

    assert scenario.gone(found(ctx, desired)), f"{desired.key} still found after its delete"
    made = {(service, op) for service, op, _ in calls.mutating()}
    assert made == set(scenario.delete_calls), f"the delete's calls changed: declare them in the scenario ({made})"
    for call, answers in codes.items():
        assert faults.injected[call] >= TIMES * len(answers), (call, faults.injected)


@pytest.mark.parametrize(("name", "call"), GIVE_UP, ids=[f"{n}-{c[1]}" for n, c in GIVE_UP])
def test_delete_gives_up_after_its_budget(name: str, call: Call, kctx: tuple[AwsContext, FakeClock]) -> None:
    """An in-use answer that never changes: the delete retries for its whole time budget (no fewer), then
    raises the AWS error saying what it waited for; the resource is still there."""
    scenario = SCENARIOS[name]
    ctx, clock = kctx
    desired, actual = created(ctx, scenario)
    faults = InUseFaults({call: in_use_codes(call)[:1]}, forever=True)
    ctx.add_hook("before-call", faults)
    started = clock.monotonic()

    with pytest.raises(ClientError) as info:
        registry.get(name).delete(ctx, actual)

    err = info.value
    assert isinstance(err, RetriesExhausted), f"{type(err).__name__}: {err}"
    assert IN_USE.search(error_code(err)) and "gave up after" in str(err) and err.what, str(err)
    waited = clock.monotonic() - started
    policy = ctx.policy
    assert policy.consistency_timeout <= waited <= policy.dependency_timeout + 2 * policy.max_delay, waited
    assert faults.injected[call] > TIMES
    assert not scenario.gone(found(ctx, desired)), "the delete gave up: the resource must still be there"


# -- 2. immutable and refused props ----------------------------------------------------------------------
def plan_change(ctx: AwsContext, desired: Desired) -> Change:
    """The planner's change for `desired`, against what its kind finds in AWS."""
    graph = Graph(ctx.cluster)
    graph.add(desired)
    observation = Observation(owned={desired.kind: registry.get(desired.kind).list_owned(ctx)})
    state = make_plan(graph, ctx, observation)
    return next(c for c in state.plan.changes if c.key == desired.key)


@pytest.mark.parametrize("name", TESTED)
def test_changing_immutable_props_replaces_or_is_refused(name: str, kctx: tuple[AwsContext, FakeClock]) -> None:
    scenario = scenario_for(name)
    kind = registry.get(name)
    assert set(scenario.changes) == set(kind.immutable | kind.refuse_change), "one change per declared prop"
    ctx, _ = kctx
    desired = prepare(ctx, scenario)
    kind.create(ctx, desired)
    same = plan_change(ctx, desired)
    assert same.action == "noop", same.diff

    for prop, patch in sorted(scenario.changes.items()):
        changed = replace(desired, props={**desired.props, **patch})
        if prop in kind.refuse_change:
            with pytest.raises(PlanError, match=f"cannot change {re.escape(prop)}: "):
                plan_change(ctx, changed)
        else:
            change = plan_change(ctx, changed)
            assert change.action == "replace" and prop in change.diff, (prop, change.action, change.diff)
            assert prop in change.reason, change.reason


# -- 3. tags on create ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", TESTED)
def test_create_carries_exactly_its_tags(name: str, kctx: tuple[AwsContext, FakeClock]) -> None:
    scenario = scenario_for(name)
    kind = registry.get(name)
    ctx, _ = kctx
    desired = prepare(ctx, scenario)
    calls = record(ctx)

    kind.create(ctx, desired)

    made = calls.mutating()
    tagging = [tags for service, op, params in made if (service, op) in TAG_CALLS for _, tags in tag_sets(params)]
    if scenario.untagged:
        assert not kind.taggable and scenario.create_call is None
        assert not tagging and not [p for _, _, p in made if tag_sets(p)], made
    else:
        assert scenario.create_call is not None
        at = [i for i, (service, op, _) in enumerate(made) if (service, op) == scenario.create_call]
        assert len(at) == 1, f"{scenario.create_call} made {len(at)} times"
        create_tags = tag_sets(made[at[0]][2])
        if scenario.tags_after_create:
            assert create_tags == [], "the API takes tags on create now: put them in the create call"
            service, op, params = made[at[0] + 1]
            assert (service, op) in TAG_CALLS and [t for _, t in tag_sets(params)] == [desired.tags], \
                f"{op} right after {scenario.create_call[1]} must tag the resource with exactly its tags"
            for tags in tagging:
                assert set(tags) <= set(desired.tags) | scenario.markers, tags
                assert all(tags[k] == v for k, v in desired.tags.items() if k in tags), tags
        else:
            assert create_tags, f"{scenario.create_call[1]} carries no tags"
            assert sorted(t for t, _ in create_tags) == sorted(scenario.tag_types or [create_tags[0][0]]), create_tags
            for _, tags in create_tags:
                assert set(tags) - set(desired.tags) == set(scenario.create_extra), tags
                assert {k: v for k, v in tags.items() if k not in scenario.create_extra} == desired.tags
            for tags in tagging:  # after the create: completion markers only, never the resource's tags
                assert set(tags) <= scenario.markers, tags
    assert found(ctx, desired) is not None, f"{desired.key} not found by its tags after create"
