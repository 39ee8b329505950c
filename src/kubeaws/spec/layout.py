"""Subnet layout: how a VPC CIDR is carved into one private and one public subnet per availability zone.

Pure and deterministic, so `plan` shows the same subnets every time. Called by `spec.validate` (does the
layout fit? if not, `subnet_fix` finds which field fixes it) and by `model.network` (the subnets to create).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

AWS_MIN_SUBNET_PREFIX = 28
PUBLIC_EXTRA_BITS = 3


class LayoutError(ValueError):
    """The subnets asked for do not fit in the VPC CIDR (or the inputs are unusable)."""


@dataclass(frozen=True)
class SubnetLayout:
    """CIDR of each subnet, keyed by AZ (in the order the AZs were given)."""

    private: dict[str, str] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)


def subnet_layout(vpc_cidr: str, azs: list[str], private_prefix: int | None = None,
                  public_prefix: int | None = None) -> SubnetLayout:
    """Lay out one private and one public subnet per AZ inside `vpc_cidr`.

    Default rule (neither prefix given): with n AZs, the VPC is cut into `blocks` equal blocks, the smallest
    power of two >= n + 1. The private subnets are blocks 0..n-1 in AZ order (prefix = VPC prefix +
    log2(blocks)); the LAST block is the public pool, cut into subnets 3 bits smaller (private prefix + 3)
    and taken in AZ order from the start of the pool. A /16 with 3 AZs gives private /18s (10.0.0.0/18,
    10.0.64.0/18, 10.0.128.0/18) and public /21s (10.0.192.0/21, 10.0.200.0/21, 10.0.208.0/21).

    Explicit prefixes (either or both given; a missing one follows the default rule, public = private + 3):
    the private subnets are allocated first in AZ order, then the public subnets, each aligned on its own
    size, packed from the start of the VPC.

    Raises LayoutError when the CIDR is not an IPv4 network, the AZ list is empty or repeats an AZ, a subnet
    would be larger than the VPC or smaller than /28 (the AWS minimum), or the subnets do not fit.
    """
    try:
        vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    except ValueError as exc:
        raise LayoutError(f"VPC CIDR {vpc_cidr!r} is not an IPv4 network: {exc}") from exc
    if not azs:
        raise LayoutError("no availability zones: at least one is needed to lay out subnets")
    if len(set(azs)) != len(azs):
        raise LayoutError(f"availability zones repeat: {azs}")
    n = len(azs)
    blocks = 1 << math.ceil(math.log2(n + 1))
    default_private = vpc.prefixlen + int(math.log2(blocks))
    if private_prefix is None and public_prefix is None:
        return _default_layout(vpc, azs, blocks, default_private)
    priv = private_prefix if private_prefix is not None else default_private
    pub = public_prefix if public_prefix is not None else priv + PUBLIC_EXTRA_BITS
    for kind, prefix in (("private", priv), ("public", pub)):
        _check_prefix(kind, prefix, vpc)
    cursor = int(vpc.network_address)
    end = int(vpc.broadcast_address) + 1
    private: dict[str, str] = {}
    public: dict[str, str] = {}
    for target, prefix in ((private, priv), (public, pub)):
        size = 1 << (32 - prefix)
        for az in azs:
            cursor = -(-cursor // size) * size  # align up on the subnet size
            if cursor + size > end:
                raise LayoutError(
                    f"{n} private /{priv} and {n} public /{pub} subnets do not fit in {vpc}: "
                    f"use a larger VPC, longer prefixes or fewer AZs")
            target[az] = str(ipaddress.IPv4Network((cursor, prefix)))
            cursor += size
    return SubnetLayout(private=private, public=public)


def _default_layout(vpc: ipaddress.IPv4Network, azs: list[str], blocks: int, priv: int) -> SubnetLayout:
    pub = priv + PUBLIC_EXTRA_BITS
    n = len(azs)
    if n > (1 << PUBLIC_EXTRA_BITS):
        raise LayoutError(f"the default layout supports at most {1 << PUBLIC_EXTRA_BITS} AZs, got {n}: "
                          "set privateSubnetPrefix/publicSubnetPrefix explicitly")
    if pub > AWS_MIN_SUBNET_PREFIX:
        largest = AWS_MIN_SUBNET_PREFIX - PUBLIC_EXTRA_BITS - int(math.log2(blocks))
        raise LayoutError(
            f"{vpc} is too small for {n} AZ(s): the public subnets would be /{pub}, smaller than the AWS "
            f"minimum /{AWS_MIN_SUBNET_PREFIX}; use a /{largest} or larger VPC, or fewer AZs")
    private_blocks = list(vpc.subnets(new_prefix=priv))
    pool = private_blocks[blocks - 1]
    public_blocks = list(pool.subnets(new_prefix=pub))
    return SubnetLayout(
        private={az: str(private_blocks[i]) for i, az in enumerate(azs)},
        public={az: str(public_blocks[i]) for i, az in enumerate(azs)},
    )


def _check_prefix(kind: str, prefix: int, vpc: ipaddress.IPv4Network) -> None:
    if prefix < vpc.prefixlen:
        raise LayoutError(f"{kind} subnets /{prefix} are larger than the VPC {vpc}: use a prefix of at least "
                          f"/{vpc.prefixlen}")
    if prefix > AWS_MIN_SUBNET_PREFIX:
        raise LayoutError(f"{kind} subnets /{prefix} are smaller than the AWS minimum /{AWS_MIN_SUBNET_PREFIX}")


def fits(vpc: ipaddress.IPv4Network, azs: list[str], private: int | None, public: int | None) -> bool:
    """Whether `subnet_layout` lays these subnets out."""
    try:
        subnet_layout(str(vpc), azs, private, public)
    except LayoutError:
        return False
    return True


def subnet_fix(vpc: ipaddress.IPv4Network, azs: list[str], private: int | None, public: int | None,
               min_azs: int) -> tuple[str, str, str]:
    """(field to report under `network`, note for the message, hint) when the subnets do not fit (`spec.validate`
    reports it). Each fix the hint lists was checked with `subnet_layout`, with the value nearest to today's.
    With a prefix set: first the prefix left to its default (a public prefix derived as private + 3 is the
    usual culprit), then the one set, then a larger VPC (never beyond /16) and fewer AZs. With no prefix set
    (the default layout): a larger VPC and fewer AZs first, then explicit prefixes."""
    fixes: list[tuple[str, str]] = []  # (field, what to write)
    note = ""
    if private is not None and public is None and private + 3 > 28:
        note = f" (publicSubnetPrefix is unset, so it is privateSubnetPrefix + 3 = /{private + 3})"
    knobs = [("publicSubnetPrefix", public, private + 3 if private is not None else None),
             ("privateSubnetPrefix", private, None)]
    knobs.sort(key=lambda k: k[1] is not None)  # the unset one first
    for name, given, derived in knobs:
        current = given if given is not None else derived  # None: the default layout (smallest subnets first)
        candidates = sorted(range(16, 29), key=lambda v: (abs(v - current) if current is not None else -v, v))
        for value in candidates:
            trial = (value, public) if name == "privateSubnetPrefix" else (private, value)
            if value != given and fits(vpc, azs, *trial):
                fixes.append((name, f"set {name}: {value}"))
                break
    sizes: list[tuple[str, str]] = []
    for prefix in range(vpc.prefixlen - 1, 15, -1):
        bigger = vpc.supernet(new_prefix=prefix)
        if fits(bigger, azs, private, public):
            sizes.append(("vpc.cidr", f"use a /{prefix} VPC (vpc.cidr, e.g. {bigger})"))
            break
    for count in range(len(azs) - 1, max(min_azs, 1) - 1, -1):
        if fits(vpc, azs[:count], private, public):
            sizes.append(("availabilityZones", f"use {count} availability zone{'s' if count > 1 else ''}"))
            break
    # The default layout (no prefix set): keep the defaults, grow the VPC; else keep the VPC, fix the prefixes.
    fixes = sizes + fixes if private is None and public is None else fixes + sizes
    if not fixes:
        return "vpc.cidr", note, "use a larger VPC (up to /16), fewer AZs, or longer subnet prefixes"
    return fixes[0][0], note, "; or ".join(text for _, text in fixes)
