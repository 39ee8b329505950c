"""The ingress rule set of one security group, reconciled as a set (not an AWS resource of its own).

Rules are kept apart from their group so that groups referencing each other (control plane <-> nodes) can
all be created first and their rules added afterwards, and on delete every rule is revoked before any group
goes. AWS IpPermissions (one permission per protocol/port range holding several CIDRs and groups) are
flattened to one rule dict per source, the shape of docs/kinds.md:
`{"protocol", "from_port", "to_port", "cidr", "source_group", "description"}`. A rule's identity ignores its
description. Called by the engine through the registry.

The rules the cluster's controllers add to kubeaws' groups are not kubeaws' to reconcile: cloud-provider-aws
opens the nodes' group to each classic load balancer's security group (a rule whose source is a group it made,
`aws.tags.is_controller_made`) and to an NLB's clients and health checks (descriptions starting
`kubernetes.io/rule/nlb/`). `list_owned` leaves them out of `ingress`, so an `apply` never revokes them while
the cluster lives; `delete` (which reads the group afresh) revokes them with the rest. Its one describe selects
the groups tagged `kubernetes.io/cluster/<cluster>=owned`, which are kubeaws' own (they carry that tag too)
and the ones the controllers made, and tells them apart by their tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from kubeaws.aws.errors import error_code
from kubeaws.aws.retry import retry_on_codes
from kubeaws.aws.session import AwsContext
from kubeaws.aws.tags import NLB_RULE_PREFIX, RESOURCE_TAG, is_controller_made, is_owned_by, k8s_cluster_tag, tag_dict
from kubeaws.resources.base import Desired, Diff, Kind, Observed, contains_unknown
from kubeaws.resources.registry import register
from kubeaws.resources.security_group import GROUP_NOT_FOUND, describe_groups

Rule = dict[str, Any]
Identity = tuple[str, int, int, str | None, str | None]

#: Protocols whose rules have ports (ICMP: type and code). Any other protocol covers all ports (-1).
PORTED = frozenset({"tcp", "udp", "icmp", "icmpv6"})
#: Numeric protocols AWS reports by name.
ALIASES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "all": "-1"}


def normalize_rule(rule: Mapping[str, Any]) -> Rule:
    """A complete rule dict in the form AWS reports it back (protocol name, -1 ports where none apply)."""
    protocol = str(rule["protocol"]).lower()
    protocol = ALIASES.get(protocol, protocol)
    ported = protocol in PORTED
    return {
        "protocol": protocol,
        "from_port": int(rule.get("from_port", -1)) if ported else -1,
        "to_port": int(rule.get("to_port", -1)) if ported else -1,
        "cidr": rule.get("cidr"),
        "source_group": rule.get("source_group"),
        "description": rule.get("description") or "",
    }


def identity(rule: Mapping[str, Any]) -> Identity:
    """What makes two rules the same rule: everything but the description."""
    r = normalize_rule(rule)
    return (r["protocol"], r["from_port"], r["to_port"], r["cidr"], r["source_group"])


def sort_rules(rules: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Normalized rules in a stable order (values may be UNKNOWN during planning, hence `str`)."""
    return sorted((normalize_rule(r) for r in rules),
                  key=lambda r: tuple("" if v is None else str(v) for v in r.values()))


def flatten(permissions: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """AWS IpPermissions -> one rule per CIDR / source group. Prefix-list sources are not modelled."""
    rules: list[Rule] = []
    for perm in permissions:
        base = {"protocol": perm["IpProtocol"], "from_port": perm.get("FromPort", -1),
                "to_port": perm.get("ToPort", -1)}
        sources = [(r["CidrIp"], None, r.get("Description")) for r in perm.get("IpRanges", [])]
        sources += [(r["CidrIpv6"], None, r.get("Description")) for r in perm.get("Ipv6Ranges", [])]
        sources += [(None, p["GroupId"], p.get("Description")) for p in perm.get("UserIdGroupPairs", [])]
        rules += [normalize_rule({**base, "cidr": c, "source_group": g, "description": d})
                  for c, g, d in sources]
    return sort_rules(rules)


def to_permissions(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rules -> AWS IpPermissions, one permission per (protocol, ports) so a single call does all.
    Descriptions are sent on revoke too: rules to revoke come from a describe, so they match exactly
    (moto even requires it for group sources)."""
    grouped: dict[tuple[str, int, int], dict[str, Any]] = {}
    for rule in sort_rules(rules):
        protocol, from_port, to_port, cidr, group = identity(rule)
        # Ports are always sent (-1 where the protocol has none): AWS ignores them for "-1"/"4", and
        # moto fails on a port-less IP-in-IP permission.
        perm = grouped.setdefault((protocol, from_port, to_port),
                                  {"IpProtocol": protocol, "FromPort": from_port, "ToPort": to_port})
        note = {"Description": rule["description"]} if rule["description"] else {}
        if group is not None:
            perm.setdefault("UserIdGroupPairs", []).append({"GroupId": group, **note})
        elif ":" in str(cidr):
            perm.setdefault("Ipv6Ranges", []).append({"CidrIpv6": cidr, **note})
        else:
            perm.setdefault("IpRanges", []).append({"CidrIp": cidr, **note})
    return list(grouped.values())


def is_controller_rule(rule: Mapping[str, Any], controller_groups: set[str]) -> bool:
    """A rule one of the cluster's controllers added: from a group it made, or one of its NLB rules."""
    return rule.get("source_group") in controller_groups or str(rule.get("description") or "").startswith(
        NLB_RULE_PREFIX)


def current_rules(ctx: AwsContext, group_id: str) -> list[Rule] | None:
    """The group's ingress rules read now, or None when the group is gone."""
    groups = describe_groups(ctx, GroupIds=[group_id])
    return flatten(groups[0].get("IpPermissions", [])) if groups else None


def _change(ctx: AwsContext, operation: str, group_id: str, rules: list[Rule], race_code: str) -> None:
    """Authorize or revoke `rules` in ONE call. If AWS answers that some were already there (authorize) or
    already gone (revoke) -- a concurrent change or a retried run -- re-read the group and send the rest."""
    def send(batch: list[Rule]) -> None:
        if not batch:
            return
        # A group (ours or the source group) created a moment ago may not be visible yet.
        retry_on_codes(lambda: ctx.call("ec2", operation, GroupId=group_id,
                                        IpPermissions=to_permissions(batch)),
                       {GROUP_NOT_FOUND}, timeout=ctx.policy.consistency_timeout,
                       what=f"security group {group_id} to be visible", policy=ctx.policy)

    try:
        send(rules)
    except ClientError as exc:
        if error_code(exc) != race_code:
            raise
        present = {identity(r): r for r in current_rules(ctx, group_id) or []}
        if operation.startswith("revoke"):  # the rules still there, exactly as AWS has them now
            send([present[i] for i in dict.fromkeys(identity(r) for r in rules) if i in present])
        else:
            send([r for r in rules if identity(r) not in present])


def authorize(ctx: AwsContext, group_id: str, rules: list[Rule]) -> None:
    _change(ctx, "authorize_security_group_ingress", group_id, rules, "InvalidPermission.Duplicate")


def revoke(ctx: AwsContext, group_id: str, rules: list[Rule]) -> None:
    _change(ctx, "revoke_security_group_ingress", group_id, rules, "InvalidPermission.NotFound")


@register
class SecurityGroupRules(Kind):
    """The ingress rule set of one security group (id = the group ID), reconciled as a set."""

    kind = "SecurityGroupRules"
    rank = 40
    immutable = frozenset({"group_id"})
    taggable = False
    parent = "SecurityGroup"

    def observe(self, group: Mapping[str, Any], controller_groups: set[str] | None = None) -> Observed:
        """One group's rule set, without the rules the cluster's controllers added (from `controller_groups`,
        or their NLB rules)."""
        tags = tag_dict(group.get("Tags"))
        key = tags.get(RESOURCE_TAG, "")
        if key.startswith("SecurityGroup/"):
            tags[RESOURCE_TAG] = f"{self.kind}/{key.partition('/')[2]}"
        rules = [r for r in flatten(group.get("IpPermissions", []))
                 if not is_controller_rule(r, controller_groups or set())]
        return Observed(kind=self.kind, id=group["GroupId"], tags=tags,
                        fields={"group_id": group["GroupId"], "ingress": rules})

    def list_owned(self, ctx: AwsContext) -> list[Observed]:
        groups = describe_groups(ctx, Filters=[{"Name": f"tag:{k8s_cluster_tag(ctx.cluster)}", "Values": ["owned"]}])
        made = {g["GroupId"] for g in groups if is_controller_made(tag_dict(g.get("Tags")), ctx.cluster)}
        return [self.observe(g, made) for g in groups if is_owned_by(tag_dict(g.get("Tags")), ctx.cluster)]

    def diff(self, actual: Observed, desired: Desired) -> Diff:
        """`group_id` as usual; `ingress` compared as a set of rule identities (descriptions ignored)."""
        changes: Diff = {}
        want_group = desired.props.get("group_id")
        if contains_unknown(want_group) or actual.fields.get("group_id") != want_group:
            changes["group_id"] = (actual.fields.get("group_id"), want_group)
        have: list[Rule] = actual.fields.get("ingress") or []
        want: list[Rule] = desired.props.get("ingress") or []
        if contains_unknown(want) or {identity(r) for r in have} != {identity(r) for r in want}:
            changes["ingress"] = (sort_rules(have), sort_rules(want))
        return changes

    def create(self, ctx: AwsContext, desired: Desired) -> Observed:
        group_id: str = desired.props["group_id"]
        rules = sort_rules(desired.props.get("ingress") or [])
        authorize(ctx, group_id, rules)
        return Observed(kind=self.kind, id=group_id, tags=dict(desired.tags),
                        fields={"group_id": group_id, "ingress": rules})

    def update(self, ctx: AwsContext, actual: Observed, desired: Desired, diff: Diff) -> Observed:
        if "group_id" in diff:
            raise NotImplementedError("the group of a rule set is replaced, never updated")
        have = sort_rules(actual.fields.get("ingress") or [])
        want = sort_rules(desired.props.get("ingress") or [])
        have_ids, want_ids = {identity(r) for r in have}, {identity(r) for r in want}
        removed = [r for r in have if identity(r) not in want_ids]
        added = [r for r in want if identity(r) not in have_ids]
        revoke(ctx, actual.id, removed)
        authorize(ctx, actual.id, added)
        kept = [r for r in have if identity(r) in want_ids]
        return Observed(kind=self.kind, id=actual.id, tags=dict(actual.tags), state=actual.state,
                        fields={"group_id": actual.id, "ingress": sort_rules(kept + added)})

    def delete(self, ctx: AwsContext, actual: Observed) -> None:
        """Revoke every ingress rule the group has now (read fresh: a delete must not miss any)."""
        rules = current_rules(ctx, actual.id)
        try:
            revoke(ctx, actual.id, rules or [])
        except ClientError as exc:
            if error_code(exc) != GROUP_NOT_FOUND:
                raise
