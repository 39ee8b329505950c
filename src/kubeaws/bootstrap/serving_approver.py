"""The approver of kubelet serving certificates on a self-managed cluster's control plane.

NOT imported by kubeaws at run time: this file is shipped as it is to every control-plane member (state bucket
key `cluster/node/kubelet-serving-approver.py`, see `bootstrap.userdata.bucket_objects`; the boot script
installs it) and run there by the distribution's python3 (3.10 on Ubuntu 22.04) as
`kubeaws-serving-approver.service`. So: standard library only, nothing newer than Python 3.10
(tests/test_serving_approver.py checks both, and runs it against stand-in `kubectl` and `aws` commands).

Why it exists: the kubelets run with `serverTLSBootstrap: true` (CIS 4.2.x; the API server and metrics-server
then verify kubelets with the cluster CA). Each kubelet asks for its serving certificate with a CSR of signer
`kubernetes.io/kubelet-serving`, which nothing in Kubernetes approves, and kube-controller-manager signs
whatever is approved without asking whose names it carries. Approval is therefore the identity check: a
certificate that names another node's DNS name or address would let its holder impersonate that kubelet to
the API server (`kubectl exec/logs`) and to metrics-server. A CSR is approved only when ALL of these hold:

- the requester is a node: `spec.username` is `system:node:<name>` (a DNS name) in group `system:nodes`;
- the certificate's subject is that same node: exactly `O=system:nodes` and `CN=system:node:<name>`;
- its usages are a server's (`server auth`, with `digital signature` / `key encipherment`);
- it asks for at least one name, only DNS names and IP addresses, and each of them belongs to THE EC2 instance
  of this cluster (tag `kubernetes.io/cluster/<cluster>=owned`, the one Auto Scaling propagates to instances;
  pending or running) whose private DNS name is `<name>`: its
  private and public DNS names, and the private, public and IPv6 addresses of its interfaces (exactly the
  addresses cloud-provider-aws reports for a node, a superset of what the kubelet reports without it).

The instance comes from EC2, not from the Node object: a node writes its own Node status, EC2 it cannot.
A CSR failing a check is denied (the reason goes to the journal; a kubelet whose CSR was denied asks again
later); one whose instance cannot be read (an AWS error) stays pending for the next pass.

Usage: `python3 kubelet-serving-approver.py --cluster NAME --region REGION --kubeconfig FILE [--passes N]
[--pause SECONDS]` (`--passes 0`, the default, runs until stopped).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import ipaddress
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
SERVER_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
# DER encodings of the object identifiers read here.
_OID_CN = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_OID_O = bytes([0x55, 0x04, 0x0A])  # 2.5.4.10
_OID_EXTENSION_REQUEST = bytes([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x0E])  # 1.2.840.113549.1.9.14
_OID_SAN = bytes([0x55, 0x1D, 0x11])  # 2.5.29.17
_STRING_TAGS = {0x0C, 0x13, 0x16}  # UTF8String, PrintableString, IA5String


class Refused(Exception):
    """A definite no: the CSR is denied with this reason."""


@dataclass
class Request:
    """What a PKCS#10 request asks for (the parts the kubelet-serving signer copies into the certificate)."""

    subject: list[tuple[str, str]] = field(default_factory=list)  # ("CN" | "O", value), in order
    dns_names: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)


# --- DER -------------------------------------------------------------------------------------------------------

def _tlv(data: bytes, at: int) -> tuple[int, bytes, int]:
    """(tag, value, next offset) of the DER element at `at`."""
    if at + 2 > len(data):
        raise Refused("unreadable request: truncated DER")
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or at + count > len(data):
            raise Refused("unreadable request: bad DER length")
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + length > len(data):
        raise Refused("unreadable request: truncated DER")
    return tag, data[at:at + length], at + length


def _elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    at = 0
    while at < len(data):
        tag, value, at = _tlv(data, at)
        yield tag, value


def _string(tag: int, value: bytes) -> str:
    if tag not in _STRING_TAGS:
        raise Refused(f"unreadable request: a name value of DER type {tag:#x}")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused("unreadable request: a name value is not UTF-8") from exc


def _subject(name: bytes) -> list[tuple[str, str]]:
    out = []
    for set_tag, rdn in _elements(name):
        attributes = list(_elements(rdn))
        if set_tag != 0x31 or len(attributes) != 1:
            raise Refused("the subject has a multi-valued or malformed name component")
        items = list(_elements(attributes[0][1]))
        if len(items) != 2 or items[0][0] != 0x06:
            raise Refused("the subject has a malformed name component")
        kind = {_OID_CN: "CN", _OID_O: "O"}.get(items[0][1])
        if kind is None:
            raise Refused("the subject has a component other than O and CN")
        out.append((kind, _string(*items[1])))
    return out


def _sans(value: bytes, request: Request) -> None:
    tag, names, end = _tlv(value, 0)
    if tag != 0x30 or end != len(value):
        raise Refused("unreadable request: malformed subject alternative names")
    for tag, raw in _elements(names):
        if tag == 0x82:
            request.dns_names.append(_string(0x16, raw))
        elif tag == 0x87 and len(raw) in (4, 16):
            request.ips.append(str(ipaddress.ip_address(raw)))
        else:
            raise Refused(f"the request asks for a subject alternative name of type {tag:#x} (only DNS names "
                          "and IP addresses are allowed)")


def parse_request(pem: str) -> Request:
    """The subject and subject alternative names of a PEM `CERTIFICATE REQUEST` (one block)."""
    match = re.fullmatch(r"\s*-----BEGIN CERTIFICATE REQUEST-----\s*([A-Za-z0-9+/=\s]+)"
                         r"-----END CERTIFICATE REQUEST-----\s*", pem)
    if match is None:
        raise Refused("unreadable request: not exactly one PEM CERTIFICATE REQUEST")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except binascii.Error as exc:
        raise Refused("unreadable request: bad base64") from exc
    try:
        return _parse_der(der)
    except (ValueError, IndexError) as exc:
        raise Refused(f"unreadable request: {exc}") from exc


def _parse_der(der: bytes) -> Request:
    tag, csr, end = _tlv(der, 0)
    if tag != 0x30 or end != len(der):
        raise Refused("unreadable request: not one DER SEQUENCE")
    info_tag, info = next(_elements(csr))
    parts = list(_elements(info))
    if info_tag != 0x30 or len(parts) < 3 or parts[1][0] != 0x30:
        raise Refused("unreadable request: malformed CertificationRequestInfo")
    request = Request(subject=_subject(parts[1][1]))
    san_seen = False
    for tag, attributes in parts[3:]:
        if tag != 0xA0:
            continue
        for _, attribute in _elements(attributes):
            (_, oid), (_, values) = list(_elements(attribute))[:2]
            if oid != _OID_EXTENSION_REQUEST:
                continue
            for _, extensions in _elements(values):
                for _, extension in _elements(extensions):
                    items = list(_elements(extension))
                    if items[0][1] != _OID_SAN:
                        continue
                    if san_seen:
                        raise Refused("the request holds more than one subject alternative name extension")
                    san_seen = True
                    _sans(items[-1][1], request)
    return request


# --- the decision ---------------------------------------------------------------------------------------------

def node_name(csr: dict[str, Any]) -> str:
    """The node that asks (from the API server's authentication of the requester), or Refused."""
    spec = csr.get("spec") or {}
    username = str(spec.get("username", ""))
    name = username[len(NODE_PREFIX):] if username.startswith(NODE_PREFIX) else ""
    if not name or len(name) > 253 or not _DNS.fullmatch(name):
        raise Refused(f"the requester {username!r} is not a node (system:node:<DNS name>)")
    if NODES_GROUP not in (spec.get("groups") or []):
        raise Refused(f"the requester {username!r} is not in group {NODES_GROUP}")
    if spec.get("signerName") != SIGNER:
        raise Refused(f"signer {spec.get('signerName')!r} is not {SIGNER}")
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or not usages <= SERVER_USAGES:
        raise Refused(f"usages {sorted(usages)} are not a server's ({sorted(SERVER_USAGES)})")
    return name


def _instance_addresses(instance: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses) EC2 gives an instance."""
    names = {str(instance.get(k) or "").lower() for k in ("PrivateDnsName", "PublicDnsName")} - {""}
    ips = {str(instance.get(k) or "") for k in ("PrivateIpAddress", "PublicIpAddress")}
    for eni in instance.get("NetworkInterfaces") or []:
        ips.add(str((eni.get("Association") or {}).get("PublicIp") or ""))
        for private in eni.get("PrivateIpAddresses") or []:
            ips.add(str(private.get("PrivateIpAddress") or ""))
            ips.add(str((private.get("Association") or {}).get("PublicIp") or ""))
        for v6 in eni.get("Ipv6Addresses") or []:
            ips.add(str(v6.get("Ipv6Address") or ""))
    return names, {str(ipaddress.ip_address(ip)) for ip in ips - {""}}


def decide(csr: dict[str, Any], instances: list[dict[str, Any]]) -> str:
    """"approve", or Refused with the reason. `instances`: what EC2 answered for the node's name in the cluster."""
    name = node_name(csr)
    try:
        pem = base64.b64decode(str((csr.get("spec") or {}).get("request", "")), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Refused("unreadable request: spec.request is not base64 of a PEM text") from exc
    request = parse_request(pem)
    expected = sorted([("CN", NODE_PREFIX + name), ("O", NODES_GROUP)])
    if sorted(request.subject) != expected:
        raise Refused(f"the subject {request.subject} is not O={NODES_GROUP}, CN={NODE_PREFIX}{name}")
    if not request.dns_names and not request.ips:
        raise Refused("the request names no DNS name or IP address")
    mine = [i for i in instances if str(i.get("PrivateDnsName", "")).lower() == name]
    if len(mine) != 1:
        raise Refused(f"{len(mine)} running instances of this cluster are named {name}")
    names, ips = _instance_addresses(mine[0])
    foreign = [n for n in request.dns_names if n.lower() not in names]
    foreign += [ip for ip in request.ips if ip not in ips]
    if foreign:  # repr: a requested name may hold anything, a line break included
        raise Refused(f"{', '.join(map(repr, foreign))} {'is' if len(foreign) == 1 else 'are'} not of instance "
                      f"{mine[0].get('InstanceId')} ({name})")
    return "approve"


# --- the loop ---------------------------------------------------------------------------------------------------

def _run(command: list[str]) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout


def pending(kubectl: list[str]) -> list[dict[str, Any]]:
    """The kubelet-serving CSRs that are neither approved nor denied."""
    out = json.loads(_run([*kubectl, "get", "csr", "--field-selector", f"spec.signerName={SIGNER}",
                           "-o", "json"]))
    return [c for c in out.get("items") or [] if not (c.get("status") or {}).get("conditions")]


def instances_named(name: str, cluster: str, region: str) -> list[dict[str, Any]]:
    """The pending or running instances of the cluster whose private DNS name is `name` (a checked DNS name:
    no comma can split the filter value)."""
    out = _run(["aws", "ec2", "describe-instances", "--region", region, "--output", "json", "--filters",
                f"Name=private-dns-name,Values={name}", f"Name=tag:kubernetes.io/cluster/{cluster},Values=owned",
                "Name=instance-state-name,Values=pending,running", "--query", "Reservations[].Instances[]"])
    found = json.loads(out or "[]")
    return found if isinstance(found, list) else []


def review(csr: dict[str, Any], kubectl: list[str], cluster: str, region: str) -> str:
    """Approve or deny one CSR (or leave it pending when EC2 cannot be read); the line to log."""
    name = csr.get("metadata", {}).get("name", "?")
    try:
        node = node_name(csr)
        try:
            found = instances_named(node, cluster, region)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            return f"{name}: left pending, EC2 could not be read for node {node}: {exc}"
        decide(csr, found)
    except Refused as exc:
        _run([*kubectl, "certificate", "deny", name])
        return f"{name}: denied: {exc}"
    _run([*kubectl, "certificate", "approve", name])
    return f"{name}: approved for node {node}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Approve kubelet serving CSRs of this cluster's EC2 instances.")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--passes", type=int, default=0, help="passes to run (0: until stopped)")
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between passes")
    args = parser.parse_args(argv)
    kubectl = ["kubectl", "--kubeconfig", args.kubeconfig]
    done = 0
    while True:
        try:
            for csr in pending(kubectl):
                print(f"kubeaws-serving-approver: {review(csr, kubectl, args.cluster, args.region)}", flush=True)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            print(f"kubeaws-serving-approver: pass failed, retrying: {exc}", file=sys.stderr, flush=True)
        done += 1
        if args.passes and done >= args.passes:
            return 0
        time.sleep(args.pause)


if __name__ == "__main__":
    sys.exit(main())
