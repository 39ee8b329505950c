"""What an AWS failure means, decided in one place.

Every answer (or missing answer) from AWS falls in one class:

- `THROTTLED`: AWS refused the request for its rate (it did nothing): retry after a pause;
- `UNSENT`: the connection was never made (endpoint unreachable, connect timeout): nothing reached AWS;
- `AMBIGUOUS`: the outcome is unknown: the connection closed or timed out after the request was sent, or a
  5xx that AWS may have answered after acting. A read is simply retried; a mutation is retried only when a
  repeat cannot duplicate anything (`repeatable`), otherwise its outcome is resolved by looking (see
  `AmbiguousOutcome` and `resources.base.create_or_adopt`);
- `NOT_FOUND`: the thing does not exist (right after a create it may only be not visible yet: callers that
  just created it wait with `aws.retry.retry_on_codes`);
- `NOT_YET_VISIBLE`: a reference that AWS cannot resolve yet although it names something just created (an
  instance profile EC2 does not see yet);
- `IN_USE`: something still depends on it (DependencyViolation, ResourceInUse, DeleteConflict);
- `ALREADY_EXISTS`: a create found its unique name or rule taken (by us after a lost answer, or by someone);
- `ACCESS_DENIED`: the caller's identity may not do it;
- `OTHER`: anything else (a validation error, a limit): reported to the user as is.

`collapse_web_page` turns an error answer that is a web page (an endpoint without the operation) into one line
naming the operation.

`already_done` says when an error answer of a given operation means "already as wanted" (a duplicate rule
on Authorize, a missing rule on Revoke, a missing resource on Delete, the route or association that is
already there).

Used by `aws.retry` and `aws.session` (what to retry) and by every resource kind (what an answer means).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError

from kubeaws.errors import KubeawsError


class ErrorClass(Enum):
    THROTTLED = "throttled"
    UNSENT = "unsent"
    AMBIGUOUS = "ambiguous"
    NOT_FOUND = "not-found"
    NOT_YET_VISIBLE = "not-yet-visible"
    IN_USE = "in-use"
    ALREADY_EXISTS = "already-exists"
    ACCESS_DENIED = "access-denied"
    OTHER = "other"


THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: Server-side failures: retried; on a mutation AWS may have acted before failing (ambiguous).
TRANSIENT_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout",
     "RequestTimeoutException", "InsufficientInstanceCapacity", "ServiceException", "ServerException"}
)
#: Something still depends on the resource (delete and detach calls retry these for a while).
IN_USE_CODES = frozenset(
    {"DependencyViolation", "ResourceInUse", "ResourceInUseException", "DeleteConflict", "InvalidIPAddress.InUse",
     "InvalidNetworkInterface.InUse", "ScalingActivityInProgress"}
)
DEPENDENCY_CODES = frozenset({"DependencyViolation", "ResourceInUse", "InvalidIPAddress.InUse"})
#: A unique name or rule is taken.
ALREADY_EXISTS_CODES = frozenset(
    {"EntityAlreadyExists", "AlreadyExists", "AlreadyExistsException", "InvalidGroup.Duplicate",
     "InvalidPermission.Duplicate", "RouteAlreadyExists", "BucketAlreadyOwnedByYou", "BucketAlreadyExists",
     "Resource.AlreadyAssociated", "DuplicateLoadBalancerName", "DuplicateTargetGroupName", "DuplicateListener",
     "InvalidLaunchTemplateName.AlreadyExistsException", "ResourceExistsException"}
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure", "AllAccessDisabled",
     "UnrecognizedClientException", "InvalidClientTokenId", "Blocked", "OptInRequired"}
)
#: Codes that say "no such thing" without the usual `NotFound` suffix.
NOT_FOUND_CODES = frozenset(
    {"NoSuchEntity", "NoSuchBucket", "NoSuchKey", "NoSuchBucketPolicy", "NoSuchTagSet", "404", "NotFound",
     "ResourceNotFoundException", "NotFoundException", "LoadBalancerNotFound", "TargetGroupNotFound",
     "ListenerNotFound", "InvalidAssociationID.NotFound", "Gateway.NotAttached", "InvalidPermission.NotFound",
     "ServerSideEncryptionConfigurationNotFoundError"}
)

#: Error answers of one operation that mean its effect is already in place (checked after the usual
#: "missing means deleted" rule of Delete*/Release*/Terminate*/Detach*/Disassociate*/Remove*/Revoke*).
ALREADY_DONE: dict[str, frozenset[str]] = {
    "AuthorizeSecurityGroupIngress": frozenset({"InvalidPermission.Duplicate"}),
    "AuthorizeSecurityGroupEgress": frozenset({"InvalidPermission.Duplicate"}),
    "AttachInternetGateway": frozenset({"Resource.AlreadyAssociated"}),
    "AssociateRouteTable": frozenset({"Resource.AlreadyAssociated"}),
    "CreateRoute": frozenset({"RouteAlreadyExists"}),
    "CreateBucket": frozenset({"BucketAlreadyOwnedByYou"}),
    "CreateAlias": frozenset({"AlreadyExistsException"}),
    # A profile holds one role: the caller checks that the role in it is the wanted one.
    "AddRoleToInstanceProfile": frozenset({"LimitExceeded", "EntityAlreadyExists"}),
}
_UNDO_PREFIXES = ("Delete", "Release", "Terminate", "Detach", "Disassociate", "Remove", "Revoke", "Deregister",
                  "Untag", "ScheduleKeyDeletion")

#: Mutations that cannot duplicate anything when sent twice: the repeat has the same effect, or AWS's
#: uniqueness of a name / rule / route makes it fail with an answer the caller takes as "already as wanted".
_REPEATABLE_PREFIXES = (*_UNDO_PREFIXES, "Put", "Modify", "Set", "Replace", "Update", "Tag", "Authorize",
                        "Attach", "Add", "Associate", "Enable", "Disable", "Register", "Cancel")
_REPEATABLE = frozenset(
    {"CreateTags", "CreateOrUpdateTags", "CreateRoute", "CreateBucket", "CreateAlias", "CreateRole",
     "CreateInstanceProfile", "CreateOpenIDConnectProvider", "CreateSecurityGroup",
     "CreateAutoScalingGroup",
     "TerminateInstanceInAutoScalingGroup", "CompleteLifecycleAction", "AbortMultipartUpload"}
)
#: Request parameters that make a create idempotent on AWS (the same token returns the first result).
TOKEN_PARAMS = ("ClientToken", "clientRequestToken", "ClientRequestToken", "IdempotencyToken")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, or '' for anything else."""
    from botocore.exceptions import ClientError
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    from botocore.exceptions import ClientError
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _not_found_code(code: str) -> bool:
    return code in NOT_FOUND_CODES or code.endswith((".NotFound", "NotFound", "NotFoundException",
                                                    ".Malformed.NotFound"))


def classify(exc: BaseException) -> ErrorClass:
    """The class of a failure (see the module docstring). Connection errors before anything was sent are
    UNSENT; any other transport failure is AMBIGUOUS."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ProxyConnectionError,
    )
    if isinstance(exc, AmbiguousOutcome):
        return ErrorClass.AMBIGUOUS
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ProxyConnectionError):
        return ErrorClass.UNSENT
    if isinstance(exc, BotoCoreError):
        # ConnectionClosedError, ReadTimeoutError, SSLError, ResponseStreamingError...: sent, no answer.
        return ErrorClass.AMBIGUOUS if _transport(exc) else ErrorClass.OTHER
    if not isinstance(exc, ClientError):
        return ErrorClass.OTHER
    code = error_code(exc)
    if code in THROTTLE_CODES:
        return ErrorClass.THROTTLED
    if code in TRANSIENT_CODES or http_status(exc) >= 500:
        return ErrorClass.AMBIGUOUS
    if code in ACCESS_DENIED_CODES:
        return ErrorClass.ACCESS_DENIED
    if code in IN_USE_CODES:
        return ErrorClass.IN_USE
    if code in ALREADY_EXISTS_CODES:
        return ErrorClass.ALREADY_EXISTS
    if _not_found_code(code):
        return ErrorClass.NOT_FOUND
    if not_yet_visible(exc):
        return ErrorClass.NOT_YET_VISIBLE
    return ErrorClass.OTHER


def _transport(exc: BotoCoreError) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, HTTPClientError | BotoConnectionError)


def is_throttled(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.THROTTLED


def is_not_found(exc: BaseException, codes: Iterable[str] = ()) -> bool:
    """A not-found answer: any of the generic not-found codes, or one of `codes` (kind-specific)."""
    return classify(exc) is ErrorClass.NOT_FOUND or (bool(error_code(exc)) and error_code(exc) in set(codes))


def is_in_use(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.IN_USE


def is_already_exists(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.ALREADY_EXISTS


def is_access_denied(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.ACCESS_DENIED


def is_ambiguous(exc: BaseException) -> bool:
    return classify(exc) is ErrorClass.AMBIGUOUS


def not_yet_visible(exc: BaseException) -> bool:
    """A reference to something just created that AWS does not resolve yet, answered with a validation
    code rather than a NotFound: EC2 or Auto Scaling about an instance profile (IAM → EC2 propagation)."""
    code = error_code(exc)
    text = str(exc).lower()
    if code in ("InvalidParameterValue", "ValidationError") and "instance profile" in text:
        return True
    return code == "InvalidParameterValue" and "iaminstanceprofile" in text


def pascal(operation: str) -> str:
    """`create_vpc` → `CreateVpc` (botocore's snake_case method name to the API's operation name; the
    few irregular names kubeaws uses are listed)."""
    if operation[:1].isupper():
        return operation
    special = {"create_open_id_connect_provider": "CreateOpenIDConnectProvider"}
    return special.get(operation) or "".join(p[:1].upper() + p[1:] for p in operation.split("_"))


def already_done(exc: BaseException, operation: str) -> bool:
    """Whether this error answer to `operation` means its effect is already in place: a missing resource
    for a delete/detach/revoke-like call, or the operation's own "already there" codes (ALREADY_DONE)."""
    name = pascal(operation)
    if name.startswith(_UNDO_PREFIXES) and classify(exc) is ErrorClass.NOT_FOUND:
        return True
    return error_code(exc) in ALREADY_DONE.get(name, frozenset())


def repeatable(operation: str, params: dict[str, object] | None = None) -> bool:
    """Whether sending this mutation again after an unknown outcome cannot duplicate anything: an
    idempotency token in the request, or an operation whose repeat has the same effect or fails on a
    unique name/rule (the caller then takes the "already exists" answer as its own resource)."""
    if params and any(params.get(k) for k in TOKEN_PARAMS):
        return True
    name = pascal(operation)
    return name in _REPEATABLE or name.startswith(_REPEATABLE_PREFIXES)


#: Statuses with which an endpoint says it has no such operation (moto's server: a web page, HTTP 404).
UNIMPLEMENTED_STATUSES = frozenset({404, 405, 501})


def _web_page(text: str, content_type: str) -> bool:
    head = text.lstrip()[:200].lower()
    return "html" in content_type.lower() or head.startswith(("<!doctype html", "<html")) or "<html" in head


def collapse_web_page(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
    """botocore `after-call` handler (every client of aws.session): an error answer that is a web page, not the
    protocol's answer (an emulator's HTML 404 for an operation it does not implement, a proxy's error page),
    gets a one-line message naming the service and operation instead of the page. The error code and status
    are kept, so the answer is classified as before."""
    status = int(getattr(http_response, "status_code", 0) or 0)
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    if status < 300 or not isinstance(error, dict):
        return
    headers = getattr(http_response, "headers", None) or {}
    if not _web_page(str(error.get("Message") or ""), str(headers.get("content-type", ""))):
        return
    what = f"{model.service_model.service_name} {model.name}"
    error["Message"] = (f"{what}: not implemented by the endpoint (HTTP {status})" if status in UNIMPLEMENTED_STATUSES
                        else f"{what}: the endpoint answered HTTP {status} with a web page, not an AWS answer")


class AmbiguousOutcome(KubeawsError):
    """A mutation that cannot safely be sent again got no usable answer (the connection closed after the
    request left, a read timeout, a 5xx): AWS may or may not have acted. Whoever made the call resolves it
    by looking (by tag, name or token) before creating again; `resources.base.create_or_adopt` does it for
    every kind's create."""

    def __init__(self, operation: str, cause: BaseException) -> None:
        code = error_code(cause) or type(cause).__name__
        super().__init__(f"{operation}: outcome unknown ({code}: {cause}); resolved by looking before any retry")
        self.operation = operation
        self.cause = cause
