"""Subnet layout (spec.layout): the default rule, explicit prefixes, and VPCs too small for the subnets."""

from __future__ import annotations

import ipaddress
import itertools
import re

import pytest

from kubeaws.spec.layout import LayoutError, SubnetLayout, subnet_layout

AZS = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]


@pytest.mark.parametrize(
    ("vpc", "n", "private", "public"),
    [
        pytest.param("10.0.0.0/16", 3, ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"],
                     ["10.0.192.0/21", "10.0.200.0/21", "10.0.208.0/21"], id="16x3"),
        pytest.param("10.0.0.0/16", 1, ["10.0.0.0/17"], ["10.0.128.0/20"], id="16x1"),
        pytest.param("10.0.0.0/16", 2, ["10.0.0.0/18", "10.0.64.0/18"], ["10.0.192.0/21", "10.0.200.0/21"],
                     id="16x2-block-2-unused"),
        pytest.param("10.1.0.0/20", 3, ["10.1.0.0/22", "10.1.4.0/22", "10.1.8.0/22"],
                     ["10.1.12.0/25", "10.1.12.128/25", "10.1.13.0/25"], id="20x3"),
        pytest.param("172.16.0.0/16", 4, ["172.16.0.0/19", "172.16.32.0/19", "172.16.64.0/19", "172.16.96.0/19"],
                     ["172.16.224.0/22", "172.16.228.0/22", "172.16.232.0/22", "172.16.236.0/22"], id="16x4"),
        pytest.param("10.0.0.0/23", 3, ["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/25"],
                     ["10.0.1.128/28", "10.0.1.144/28", "10.0.1.160/28"], id="23x3-smallest-fit"),
    ],
)
def test_default_layout(vpc: str, n: int, private: list[str], public: list[str]) -> None:
    layout = subnet_layout(vpc, AZS[:n])
    assert layout == SubnetLayout(private=dict(zip(AZS, private, strict=False)),
                                  public=dict(zip(AZS, public, strict=False)))
    assert list(layout.private) == AZS[:n]  # AZ order kept


@pytest.mark.parametrize(
    ("vpc", "n", "priv", "pub", "private", "public"),
    [
        pytest.param("10.0.0.0/16", 3, 20, 24, ["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"],
                     ["10.0.48.0/24", "10.0.49.0/24", "10.0.50.0/24"], id="both"),
        pytest.param("10.0.0.0/16", 2, 19, None, ["10.0.0.0/19", "10.0.32.0/19"],
                     ["10.0.64.0/22", "10.0.68.0/22"], id="private-only-public-is-plus-3"),
        pytest.param("10.0.0.0/16", 2, None, 24, ["10.0.0.0/18", "10.0.64.0/18"],
                     ["10.0.128.0/24", "10.0.129.0/24"], id="public-only"),
        pytest.param("10.0.0.0/24", 2, 26, 26, ["10.0.0.0/26", "10.0.0.64/26"],
                     ["10.0.0.128/26", "10.0.0.192/26"], id="exact-fit"),
        pytest.param("10.0.0.0/16", 2, 24, 20, ["10.0.0.0/24", "10.0.1.0/24"],
                     ["10.0.16.0/20", "10.0.32.0/20"], id="public-aligned-up"),
    ],
)
def test_explicit_prefixes(vpc: str, n: int, priv: int | None, pub: int | None, private: list[str],
                           public: list[str]) -> None:
    layout = subnet_layout(vpc, AZS[:n], priv, pub)
    assert list(layout.private.values()) == private
    assert list(layout.public.values()) == public


@pytest.mark.parametrize(
    ("vpc", "n", "priv", "pub", "fragment"),
    [
        pytest.param("10.0.0.0/24", 3, None, None, "use a /23 or larger VPC", id="24x3-too-small"),
        pytest.param("10.0.0.0/26", 1, None, None, "smaller than the AWS minimum /28", id="26x1"),
        pytest.param("10.0.0.0/16", 3, 17, None, "do not fit", id="private-too-big"),
        pytest.param("10.0.0.0/16", 2, 15, None, "larger than the VPC", id="prefix-above-vpc"),
        pytest.param("10.0.0.0/16", 2, 20, 29, "AWS minimum /28", id="public-too-small"),
        pytest.param("10.0.0.0/24", 2, 26, 25, "do not fit", id="explicit-overflow"),
        pytest.param("10.0.0.0/16", 0, None, None, "no availability zones", id="no-azs"),
        pytest.param("10.0.0.1/16", 1, None, None, "not an IPv4 network", id="host-bits"),
        pytest.param("fd00::/56", 1, None, None, "not an IPv4 network", id="ipv6"),
        pytest.param("banana", 1, None, None, "not an IPv4 network", id="garbage"),
    ],
)
def test_layout_errors(vpc: str, n: int, priv: int | None, pub: int | None, fragment: str) -> None:
    with pytest.raises(LayoutError, match=re.escape(fragment)) as info:
        subnet_layout(vpc, AZS[:n], priv, pub)
    assert isinstance(info.value, ValueError)


def test_repeated_az_rejected() -> None:
    with pytest.raises(LayoutError, match="repeat"):
        subnet_layout("10.0.0.0/16", ["us-east-1a", "us-east-1a"])


def test_more_than_eight_azs_needs_explicit_prefixes() -> None:
    azs = [f"xx-test-1{c}" for c in "abcdefghi"]
    with pytest.raises(LayoutError, match="at most 8"):
        subnet_layout("10.0.0.0/16", azs)
    layout = subnet_layout("10.0.0.0/16", azs, 21, 24)
    assert len(layout.private) == len(layout.public) == 9


@pytest.mark.parametrize(("prefix", "n"), list(itertools.product(range(16, 25), range(1, 7))))
def test_layout_is_disjoint_inside_the_vpc(prefix: int, n: int) -> None:
    vpc = ipaddress.IPv4Network(f"10.0.0.0/{prefix}")
    try:
        layout = subnet_layout(str(vpc), AZS[:n])
    except LayoutError:
        # blocks = 2**n.bit_length(); only fails when a public subnet would be under /28
        assert prefix + n.bit_length() + 3 > 28
        return
    nets = [ipaddress.IPv4Network(c) for c in [*layout.private.values(), *layout.public.values()]]
    assert len(nets) == 2 * n
    for a, b in itertools.combinations(nets, 2):
        assert not a.overlaps(b)
    assert all(net.subnet_of(vpc) and net.prefixlen <= 28 for net in nets)
    assert subnet_layout(str(vpc), AZS[:n]) == layout  # deterministic
