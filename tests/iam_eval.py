"""A small IAM policy evaluator for the test suite: is one request (IAM action, resource ARN, request context,
caller) allowed by a set of JSON policies?

Used by tests/test_bootstrap_iam.py to check that every AWS call of the boot scripts is allowed by the instance
role that runs it (and not denied by the state bucket's policy), and unit-tested there table by table. It
implements what the cluster's policies use, following the AWS documentation:

- Decision (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html and
  .../reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html): an applicable Deny statement
  is an explicit deny and beats every Allow; otherwise an applicable Allow allows; otherwise the request is
  implicitly denied. The policies given are evaluated together, order does not matter. Within one account, an
  identity-based policy and a resource-based policy (e.g. a bucket policy) are passed together: an Allow in
  either suffices, a Deny in either denies.
- Action / NotAction (.../reference_policies_elements_action.html, .../reference_policies_elements_notaction.html):
  `service:Action` patterns with `*` and `?`, case-insensitive.
- Resource / NotResource (.../reference_policies_elements_resource.html): ARN patterns with `*` and `?` inside
  each colon-separated segment; a `*` ending a segment may expand beyond the colon boundaries; `"*"` is every
  resource. Case-sensitive.
- Principal / NotPrincipal (.../reference_policies_elements_principal.html), for resource-based policies only:
  `"*"`, `{"AWS": "*"}`, an account ID or `arn:aws:iam::<account>:root` (the whole account), or a role ARN (its
  sessions). The request's `principal` is the caller's role ARN.
- Condition (.../reference_policies_elements_condition_operators.html and
  .../reference_policies_condition-logic-multiple-context-keys-or-values.html): operators are ANDed, the keys of
  one operator are ANDed, the values of one key are ORed, and NORed for a negated operator (StringNotEquals,
  StringNotLike, NumericNotEquals, DateNotEquals, ArnNotEquals, ArnNotLike, NotIpAddress). Condition key names
  are case-insensitive, values are case-sensitive (except the ...IgnoreCase operators). A key missing from the
  request context makes the condition false, except for negated operators (true), `...IfExists` (true) and
  `Null` (which tests presence).
- Set operators (.../reference_policies_condition-single-vs-multi-valued-context-keys.html): `ForAllValues:`
  is true when every request value matches (also when the key is missing or empty); `ForAnyValue:` is true when
  at least one does (false when the key is missing). Without a set operator a multivalued key matches when any
  of its values matches (and a negated operator when none does).

Not implemented, and refused with ValueError rather than guessed: policy variables (`${...}`), unknown condition
operators, statements without Effect, Action/NotAction or Resource/NotResource. Permission boundaries, SCPs,
session policies and cross-account rules are out of scope.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

#: Operators whose match is negated (values NORed; true when the key is missing).
NEGATED = frozenset({"stringnotequals", "stringnotequalsignorecase", "stringnotlike", "numericnotequals",
                     "datenotequals", "arnnotequals", "arnnotlike", "notipaddress"})


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Request:
    """What is authorized: one action on one resource, with the request context (condition keys -> values; a
    key with several values is multivalued) and, for resource-based policies, the caller's ARN."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    principal: str | None = None

    @staticmethod
    def make(action: str, resource: str, context: Mapping[str, str | Sequence[str]] | None = None,
             principal: str | None = None) -> Request:
        """A request whose context keys are lower-cased (condition key names are case-insensitive) and whose
        values are tuples of strings; a key with no value is left out (it is missing)."""
        ctx: dict[str, tuple[str, ...]] = {}
        for key, value in (context or {}).items():
            values = (value,) if isinstance(value, str) else tuple(value)
            if values:
                ctx[key.lower()] = tuple(str(v) for v in values)
        return Request(action, resource, ctx, principal)


@dataclass(frozen=True)
class Result:
    """The decision, with the statements that made it (Sid, or `policy#statement` when there is none)."""

    decision: Decision
    allowed_by: tuple[str, ...] = ()
    denied_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The statements of a policy document (`Statement` may be one object or a list)."""
    found = policy.get("Statement", [])
    return [found] if isinstance(found, Mapping) else list(found)


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Result:
    """Explicit deny beats allow beats implicit deny, over every statement of every policy."""
    allowed: list[str] = []
    denied: list[str] = []
    for p, policy in enumerate(policies):
        for s, statement in enumerate(statements(policy)):
            effect = statement.get("Effect")
            if effect not in ("Allow", "Deny"):
                raise ValueError(f"statement {p}#{s}: Effect must be Allow or Deny, not {effect!r}")
            if statement_applies(statement, request):
                (denied if effect == "Deny" else allowed).append(str(statement.get("Sid") or f"{p}#{s}"))
    if denied:
        return Result(Decision.EXPLICIT_DENY, tuple(allowed), tuple(denied))
    if allowed:
        return Result(Decision.ALLOW, tuple(allowed))
    return Result(Decision.IMPLICIT_DENY)


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Principal, action, resource and condition all match the request."""
    return (_principal_matches(statement, request.principal)
            and _element_matches(statement, "Action", request.action, action_matches)
            and _element_matches(statement, "Resource", request.resource, arn_matches)
            and condition_holds(statement.get("Condition") or {}, request.context))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _element_matches(statement: Mapping[str, Any], name: str, value: str,
                     match: Callable[[str, str], bool]) -> bool:
    positive, negative = statement.get(name), statement.get(f"Not{name}")
    if (positive is None) == (negative is None):
        raise ValueError(f"a statement needs exactly one of {name} and Not{name}: {dict(statement)}")
    if positive is not None:
        return any(match(str(p), value) for p in _as_list(positive))
    return not any(match(str(p), value) for p in _as_list(negative))


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """`*` = any run of characters, `?` = one character; everything else literal."""
    if "${" in pattern:
        raise ValueError(f"policy variables are not supported: {pattern!r}")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_matches(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """`ec2:Describe*` matches `ec2:DescribeInstances`; service prefix and action name are case-insensitive."""
    return glob_matches(pattern, action, ignore_case=True)


def arn_matches(pattern: str, arn: str) -> bool:
    """The Resource element's ARN matching: `*` is everything; otherwise segment by segment (arn, partition,
    service, region, account, resource), wildcards inside a segment, and a `*` that ends the pattern's last
    segment may run on past colons (`arn:aws:s3:::bucket/*`, `arn:aws:ec2:*`)."""
    if pattern == "*":
        return True
    want = pattern.split(":", 5)
    have = arn.split(":", 5)
    for i, part in enumerate(want):
        last = i == len(want) - 1
        if last and (i == 5 or part.endswith("*")):
            return len(have) > i and glob_matches(part, ":".join(have[i:]))
        if i >= len(have) or not glob_matches(part, have[i]):
            return False
    return len(have) == len(want)


def _arn_condition_matches(pattern: str, arn: str) -> bool:
    """ArnEquals / ArnLike: each of the six colon-separated components matched separately."""
    want, have = pattern.split(":", 5), arn.split(":", 5)
    return len(want) == len(have) == 6 and all(glob_matches(w, h) for w, h in zip(want, have, strict=True))


def _principal_matches(statement: Mapping[str, Any], principal: str | None) -> bool:
    positive, negative = statement.get("Principal"), statement.get("NotPrincipal")
    if positive is None and negative is None:
        return True  # an identity-based policy statement
    if principal is None:
        raise ValueError("a resource-based policy statement (Principal) needs the request's principal")
    if positive is not None:
        return _principal_in(positive, principal)
    return not _principal_in(negative, principal)


def _principal_in(element: Any, principal: str) -> bool:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        raise ValueError(f"unsupported Principal element {element!r}")
    account = principal.split(":")[4] if principal.startswith("arn:") else principal
    for kind, values in element.items():
        if kind != "AWS":
            continue  # Service, Federated, CanonicalUser principals are never an IAM role's session
        for value in _as_list(values):
            value = str(value)
            if value in ("*", principal, account, f"arn:aws:iam::{account}:root"):
                return True
    return False


def _number(value: str) -> float:
    return float(value)


def _date(value: str) -> datetime.datetime:
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return datetime.datetime.fromtimestamp(float(value), datetime.UTC)
    parsed = datetime.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _ip(request_value: str, policy_value: str) -> bool:
    try:
        return ipaddress.ip_address(request_value) in ipaddress.ip_network(policy_value, strict=False)
    except ValueError:
        return False


def _compare(cast: Callable[[str], Any], test: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    def match(request_value: str, policy_value: str) -> bool:
        try:
            left = cast(request_value)
        except ValueError:
            return False  # a request value of the wrong type never matches
        return test(left, cast(policy_value))
    return match


#: Base operator (lower case, without IfExists, set prefix or negation) -> match(request value, policy value).
_MATCHERS: dict[str, Callable[[str, str], bool]] = {
    "stringequals": lambda r, p: r == p,
    "stringequalsignorecase": lambda r, p: r.casefold() == p.casefold(),
    "stringlike": lambda r, p: glob_matches(p, r),
    "numericequals": _compare(_number, lambda r, p: r == p),
    "numericlessthan": _compare(_number, lambda r, p: r < p),
    "numericlessthanequals": _compare(_number, lambda r, p: r <= p),
    "numericgreaterthan": _compare(_number, lambda r, p: r > p),
    "numericgreaterthanequals": _compare(_number, lambda r, p: r >= p),
    "dateequals": _compare(_date, lambda r, p: r == p),
    "datelessthan": _compare(_date, lambda r, p: r < p),
    "datelessthanequals": _compare(_date, lambda r, p: r <= p),
    "dategreaterthan": _compare(_date, lambda r, p: r > p),
    "dategreaterthanequals": _compare(_date, lambda r, p: r >= p),
    "bool": lambda r, p: r.lower() == p.lower(),
    "binaryequals": lambda r, p: r == p,
    "ipaddress": _ip,
    "arnequals": lambda r, p: _arn_condition_matches(p, r),
    "arnlike": lambda r, p: _arn_condition_matches(p, r),
}
#: Negated operator -> the operator it negates.
_POSITIVE = {"stringnotequals": "stringequals", "stringnotequalsignorecase": "stringequalsignorecase",
             "stringnotlike": "stringlike", "numericnotequals": "numericequals", "datenotequals": "dateequals",
             "arnnotequals": "arnequals", "arnnotlike": "arnlike", "notipaddress": "ipaddress"}


def _policy_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def condition_holds(condition: Mapping[str, Any], context: Mapping[str, tuple[str, ...]]) -> bool:
    """Every operator, and every key under it, holds (context keys lower-case, as `Request.make` leaves them)."""
    for operator, pairs in condition.items():
        if not isinstance(pairs, Mapping):
            raise ValueError(f"condition operator {operator} needs a map of keys to values")
        for key, values in pairs.items():
            if not key_condition_holds(operator, [_policy_value(v) for v in _as_list(values)],
                                       context.get(key.lower())):
                return False
    return True


def key_condition_holds(operator: str, policy_values: Sequence[str], request_values: Sequence[str] | None) -> bool:
    """One operator on one key: `request_values` None (or empty) when the key is not in the request."""
    name = operator.lower()
    qualifier = ""
    for prefix in ("forallvalues:", "foranyvalue:"):
        if name.startswith(prefix):
            qualifier, name = prefix[:-1], name[len(prefix):]
    if_exists = name.endswith("ifexists")
    if if_exists:
        name = name[:-len("ifexists")]
    present = bool(request_values)
    if name == "null":
        if qualifier or if_exists:
            raise ValueError(f"unsupported operator {operator}")
        return any(p.lower() == ("false" if present else "true") for p in policy_values)
    negated = name in NEGATED
    matcher = _MATCHERS.get(_POSITIVE.get(name, name))
    if matcher is None:
        raise ValueError(f"unsupported condition operator {operator}")
    if not present:
        if if_exists or qualifier == "forallvalues":
            return True
        return False if qualifier == "foranyvalue" else negated
    assert request_values is not None

    def holds(request_value: str) -> bool:
        hit = any(matcher(request_value, p) for p in policy_values)  # values ORed ...
        return not hit if negated else hit  # ... and NORed when negated

    if qualifier == "forallvalues":
        return all(holds(v) for v in request_values)
    if qualifier == "foranyvalue":
        return any(holds(v) for v in request_values)
    hit = any(any(matcher(v, p) for p in policy_values) for v in request_values)
    return not hit if negated else hit
