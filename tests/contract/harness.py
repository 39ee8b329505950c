"""Machinery of the resource-kind contract tests (tests/test_kinds_contract.py), shared by the scenario modules.

- `Scenario`: how one kind is exercised on the moto server (its prerequisites and desired resource, a change
  of each immutable / refuse-change prop, the calls its delete makes, where its tags go).
- `contract_ctx`: an AwsContext for a cluster of its own on the shared moto server, its policy (AWS's real
  budgets) on a `FakeClock`: retries and waits run in no real time.
- `Calls`: every request from every thread with its parameters as given (`before-parameter-build`, which
  requests answered by a hook pass too).
- `InUseFaults`: a `before-call` handler answering chosen delete calls with in-use errors instead of sending
  them, per distinct request (operation + parameters), so each retry of one call sees the next answer.
- `in_use_codes`: the in-use answers AWS documents for a call: from botocore's service model (its error
  shapes), or, for EC2 and S3 whose models document no errors, from `UNMODELED` (AWS's error references).
- `tag_sets`: the tags a request carries, whatever the service's shape for them.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import botocore.session

from kubeaws.aws.session import AwsContext, AwsSettings, is_read_operation
from kubeaws.aws.tags import owned_tags
from kubeaws.resources.base import Desired, Observed
from tests.conftest import REGION
from tests.fake_aws import Answer, error
from tests.helpers import FakeClock

Call = tuple[str, str]  # (service, operation)

#: Error codes meaning "in use / busy: try again once something else is done".
IN_USE = re.compile(r"InUse|DependencyViolation|DeleteConflict|ConcurrentModification|ResourceContention"
                    r"|ScalingActivityInProgress|BucketNotEmpty")

#: EC2's and S3's botocore models document no errors: the in-use answers of the delete-path calls, from the
#: EC2 API error-code reference and S3's error responses; a string says why AWS has none for that call.
UNMODELED: dict[Call, tuple[str, ...] | str] = {
    ("ec2", "DeleteVpc"): ("DependencyViolation",),
    ("ec2", "DeleteSubnet"): ("DependencyViolation",),
    ("ec2", "DetachInternetGateway"): ("DependencyViolation",),  # "has some mapped public address(es)"
    ("ec2", "DeleteInternetGateway"): ("DependencyViolation",),
    ("ec2", "DeleteRouteTable"): ("DependencyViolation",),
    ("ec2", "DeleteSecurityGroup"): ("DependencyViolation",),
    ("ec2", "DeleteNetworkInterface"): ("InvalidNetworkInterface.InUse",),
    ("ec2", "DeleteVolume"): ("VolumeInUse",),
    ("ec2", "ReleaseAddress"): ("InvalidIPAddress.InUse",),
    ("ec2", "DisassociateAddress"): "only InvalidAssociationID.NotFound (already undone)",
    ("ec2", "DisassociateRouteTable"): "only InvalidAssociationID.NotFound (already undone)",
    ("ec2", "RevokeSecurityGroupIngress"): "a rule can always be revoked (InvalidPermission.NotFound: gone)",
    ("ec2", "DeleteNatGateway"): "asynchronous: the gateway goes `deleting` and the kind waits for `deleted`",
    ("ec2", "TerminateInstances"): "asynchronous: the kind waits for `terminated`",
    ("ec2", "DeleteLaunchTemplate"): "EC2 deletes a template even while Auto Scaling groups name it",
    ("s3", "DeleteBucket"): ("BucketNotEmpty",),
    ("s3", "DeleteObjects"): "per-key failures come back in the answer (the kind raises on them)",
}
#: HTTP status of the injected errors, per service (what AWS answers its in-use errors with).
STATUS = {"ec2": 400, "elbv2": 400, "autoscaling": 400, "kms": 400, "iam": 409, "s3": 409, "eks": 409}
#: Calls that only tag (AWS has one per service, sometimes per resource type).
TAG_CALLS = {("ec2", "CreateTags"), ("elbv2", "AddTags"), ("autoscaling", "CreateOrUpdateTags"),
             ("eks", "TagResource"), ("kms", "TagResource"), ("iam", "TagRole"), ("iam", "TagInstanceProfile"),
             ("iam", "TagOpenIDConnectProvider"), ("s3", "PutBucketTagging")}


@dataclass(frozen=True)
class Scenario:
    """How the contract tests exercise one kind on the moto server."""

    kind: str
    #: Creates the prerequisites (raw calls, so not owned by the cluster) and returns the desired resource,
    #: its props concrete, tagged for the context's cluster.
    desired: Callable[[AwsContext], Desired]
    #: Immutable / refuse-change prop -> a props patch changing it. Values need not exist in AWS: a plan only
    #: compares them with what it found.
    changes: Mapping[str, Mapping[str, Any]]
    #: The mutating calls the kind's delete makes, every cleanup step included.
    delete_calls: tuple[Call, ...]
    #: The call that creates the resource and must carry its tags (None for a kind without AWS tags).
    create_call: Call | None
    #: Gives the created resource what its delete cleans up when creating it does not (an attached policy's
    #: instance profile, an object in a bucket, a leaked interface).
    before_delete: Callable[[AwsContext, Observed], None] | None = None
    #: EC2 resource types the create call tags (one TagSpecification each): default, one.
    tag_types: tuple[str, ...] = ()
    #: Tags kubeaws adds to the create call's own for its bookkeeping (a content hash).
    create_extra: frozenset[str] = frozenset()
    #: Tags a tagging call writes after the create, as completion markers (never the desired tags).
    markers: frozenset[str] = frozenset()
    #: Why the API cannot take tags in the create call: the tagging call must then come right after it.
    tags_after_create: str = ""
    #: Why the kind's resources carry no AWS tags at all.
    untagged: str = ""
    #: Installs what stands in for a moto gap the kind meets (said where it is defined).
    fakes: Callable[[AwsContext], None] | None = None
    #: Whether what `list_owned` finds after the delete (None: nothing) means the resource is gone.
    gone: Callable[[Observed | None], bool] = lambda found: found is None


def tags_for(ctx: AwsContext, kind: str, name: str) -> dict[str, str]:
    """The ownership tags the model gives a resource, plus a team tag from the spec."""
    return owned_tags(ctx.cluster, kind, name, f"{ctx.cluster}-{name}", {"team": "contract"})


def contract_ctx(endpoint: str, cluster: str) -> tuple[AwsContext, FakeClock]:
    """A context for `cluster` on the moto server; AWS's real retry budgets on a fake clock."""
    clock = FakeClock()
    settings = AwsSettings(region=REGION, endpoint_url=endpoint)
    return AwsContext(settings, cluster=cluster, policy=clock.policy()), clock


class Calls:
    """`before-parameter-build` handler: (service, operation, parameters as given) of every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, params: Any, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.service_model.service_name, model.name, copy.deepcopy(dict(params))))

    def mark(self) -> int:
        with self._lock:
            return len(self.calls)

    def mutating(self, since: int = 0) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            return [c for c in self.calls[since:] if not is_read_operation(c[1])]


def record(ctx: AwsContext) -> Calls:
    calls = Calls()
    ctx.add_hook("before-parameter-build", calls)
    return calls


def _request_key(params: Any) -> str:
    """What identifies one request among others of its operation: its serialized parameters."""
    return json.dumps({k: params.get(k) for k in ("url_path", "query_string", "body")}, sort_keys=True,
                      default=repr)


class InUseFaults:
    """`before-call` handler: each distinct request of the chosen calls is answered with `codes[call]` in turn,
    `times` times each, before it goes through; with `forever`, always with the first code."""

    def __init__(self, codes: Mapping[Call, Sequence[str]], times: int = 2, forever: bool = False) -> None:
        self.codes = {k: tuple(v) for k, v in codes.items() if v}
        self.times = times
        self.forever = forever
        self.injected: Counter[Call] = Counter()
        self._seen: Counter[tuple[Call, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, model: Any, params: Any, **_: Any) -> Answer | None:
        call = (model.service_model.service_name, model.name)
        codes = self.codes.get(call)
        if not codes:
            return None
        key = (call, _request_key(params))
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
            if not self.forever and n >= len(codes) * self.times:
                return None
            code = codes[0] if self.forever else codes[n // self.times]
            self.injected[call] += 1
        return error(STATUS[call[0]], code, f"injected by the contract test: {model.name} while in use")


@functools.cache
def _service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def in_use_codes(call: Call) -> tuple[str, ...]:
    """The in-use answers AWS documents for `call` (() when it has none). Raises KeyError for an EC2 or S3 call
    not classified in UNMODELED."""
    if call in UNMODELED:
        known = UNMODELED[call]
        return known if isinstance(known, tuple) else ()
    service, operation = call
    if service in ("ec2", "s3"):
        raise KeyError(f"{service}:{operation} is not in UNMODELED: classify it (its in-use answers, or why none)")
    shapes = _service_model(service).operation_model(operation).error_shapes
    codes = [str(s.metadata.get("error", {}).get("code") or s.name) for s in shapes]
    return tuple(sorted(c for c in codes if IN_USE.search(c)))


def tag_sets(params: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(EC2 resource type or "", tags) for every tag set a request's parameters carry."""
    found: list[tuple[str, dict[str, str]]] = []
    for spec in params.get("TagSpecifications") or []:
        found.append((str(spec.get("ResourceType", "")), _pairs(spec.get("Tags"))))
    if isinstance(params.get("Tags"), list):
        found.append(("", _pairs(params["Tags"])))
    if isinstance(params.get("tags"), dict):
        found.append(("", {str(k): str(v) for k, v in params["tags"].items()}))
    if isinstance(params.get("Tagging"), dict):
        found.append(("", _pairs(params["Tagging"].get("TagSet"))))
    return found


def _pairs(items: Any) -> dict[str, str]:
    """[{Key, Value}] (EC2, IAM, ELB, Auto Scaling, S3) or [{TagKey, TagValue}] (KMS) as a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        key = item.get("Key", item.get("TagKey"))
        out[str(key)] = str(item.get("Value", item.get("TagValue", "")))
    return out
