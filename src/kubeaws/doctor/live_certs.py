"""Certificate expiry of a kubeadm control plane, for `kubeaws doctor --live` and the plan.

kubeadm signs each member's leaf certificates for one year when the member joins (kubeaws sets no
`certificateValidityPeriod`), the CAs kubeaws made for ten (kubeaws.pki); a cluster nobody touched for a year
stops. What is read, and where:
- every certificate under /etc/kubernetes/pki (apiserver, apiserver-kubelet-client, apiserver-etcd-client,
  front-proxy-client, etcd server/peer/healthcheck-client, the CAs) and the client certificates embedded in
  admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf (and kubelet.conf when it embeds one),
  on every Ready control-plane node, by the control-plane probe (kubeaws.member_probe: `parse_dump` reads
  its `certs` container's log);
- the API server's serving certificate from the client side (`served_certificate`: one TLS handshake that
  verifies nothing, so that an expired certificate is still read; through the bastion tunnel for a private
  endpoint), which needs no node access;
- the CAs in the state bucket (`pki/*.crt`: what every new member installs).

Findings: `certs.expiring` (warning within 30 days, error within 7 days or expired) per leaf certificate,
`certs.ca-expiring` (warning within a year, error within 7 days) per CA, each certificate once with the
nodes that hold it. The remedy for leaves is replacement: `kubeaws rollout -f SPEC --control-plane-only
--force` gives every member a new instance, whose `kubeadm join --control-plane` (or init phases) signs new
leaf certificates from the CAs in the bucket (the bucket holds only CAs and the service-account key: the
boot script's PKI_FILES). A CA near its end needs a new cluster PKI: replacement does not renew it.

`plan_warnings` is the plan's part (kubeaws.api.plan_state): at most one DescribeInstances (the members'
launch times: a member's leaf certificates are as old as its instance) and, for a public endpoint and not on
the local emulator, one TLS handshake with a short timeout. Called by doctor.live_control_plane and
kubeaws.api.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509

from kubeaws.aws.session import AwsContext
from kubeaws.doctor.findings import Finding
from kubeaws.spec.models import ClusterSpec

WARN_DAYS, ERROR_DAYS, CA_WARN_DAYS = 30, 7, 365
#: kubeadm's leaf validity (its default certificateValidityPeriod, which kubeaws keeps).
LEAF_VALIDITY = dt.timedelta(days=365)
HANDSHAKE_TIMEOUT = 3.0
CA_FILES = ("pki/ca.crt", "pki/front-proxy-ca.crt", "pki/etcd/ca.crt")
REMEDY = ("renew them by replacing the members: `kubeaws rollout -f SPEC --control-plane-only --force` (each "
          "new member's kubeadm join signs fresh certificates from the cluster CAs)")
CA_REMEDY = ("a CA is not renewed by replacing members: plan a new cluster PKI before it expires (kubeadm's "
             "'Manual rotation of CA certificates'), or move the workloads to a new cluster")


@dataclass(frozen=True)
class Seen:
    """One certificate and where it was read (`where`: "<node>:<file>", "state bucket:<key>", "API endpoint")."""

    cert: x509.Certificate
    where: str

    @property
    def is_ca(self) -> bool:
        try:
            return bool(self.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    @property
    def subject(self) -> str:
        names = self.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.cert.subject.rfc4514_string()


def parse_dump(node: str, text: str) -> tuple[list[Seen], list[str]]:
    """The probe's `certs` log ("== <file>" then a PEM, or a kubeconfig's base64 client-certificate-data):
    (the certificates, what could not be read)."""
    found: list[Seen] = []
    bad: list[str] = []
    name, lines = "", []  # type: tuple[str, list[str]]
    for line in [*text.splitlines(), "== "]:
        if not line.startswith("== "):
            lines.append(line)
            continue
        if name:
            body = "\n".join(lines).strip()
            try:
                data = body.encode() if body.startswith("-----BEGIN") else base64.b64decode(body, validate=True)
                found += [Seen(c, f"{node}:{name}") for c in x509.load_pem_x509_certificates(data)[:1]]
            except (ValueError, binascii.Error):
                bad.append(f"{node}:{name}")
        name, lines = line[3:].strip(), []
    return found, bad


def served_certificate(host: str, port: int, server_name: str | None = None,
                       timeout: float = HANDSHAKE_TIMEOUT) -> x509.Certificate:
    """The certificate a TLS server presents (one handshake, nothing verified, nothing sent): an expired or
    otherwise invalid certificate is read too. OSError/ssl.SSLError when the server cannot be reached."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=server_name or host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return x509.load_der_x509_certificate(der)


def bucket_cas(spec: ClusterSpec, ctx: AwsContext, bucket: str) -> list[Seen]:
    """The CAs in the state bucket (missing ones left out)."""
    out = []
    for key in CA_FILES:
        try:
            body = ctx.call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
            out.append(Seen(x509.load_pem_x509_certificate(body), f"state bucket:{key}"))
        except (ClientError, ValueError):
            continue
    return out


def _days(cert: x509.Certificate, now: dt.datetime) -> float:
    return (cert.not_valid_after_utc - now).total_seconds() / 86400


def _when(cert: x509.Certificate, now: dt.datetime) -> str:
    days = _days(cert, now)
    date = f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    return f"EXPIRED on {date}" if days < 0 else f"expires on {date} (in {days:.0f} days)"


def cert_findings(seen: Iterable[Seen], now: dt.datetime) -> list[Finding]:
    """certs.expiring / certs.ca-expiring, one finding per certificate (by issuer and serial number) naming
    every place it was read."""
    unique: dict[tuple[str, int], list[Seen]] = {}
    for s in seen:
        unique.setdefault((s.cert.issuer.rfc4514_string(), s.cert.serial_number), []).append(s)
    findings = []
    for group in sorted(unique.values(), key=lambda g: (g[0].cert.not_valid_after_utc, g[0].where)):
        first, days = group[0], _days(group[0].cert, now)
        where = ", ".join(sorted({s.where for s in group}))
        if first.is_ca:
            if days > CA_WARN_DAYS:
                continue
            findings.append(Finding("error" if days <= ERROR_DAYS else "warning", "certs.ca-expiring",
                                    f"CA {first.subject} {_when(first.cert, now)} ({where})", "cluster PKI",
                                    CA_REMEDY))
        elif days <= WARN_DAYS:
            findings.append(Finding("error" if days <= ERROR_DAYS else "warning", "certs.expiring",
                                    f"certificate {first.subject} {_when(first.cert, now)} ({where})",
                                    "control plane", REMEDY))
    return findings


def unreadable(what: str) -> Finding:
    return Finding("warning", "certs.unreadable", f"the control plane's certificates could not be read: {what}",
                   "control plane", "`kubectl -n kube-system get jobs,pods -l app.kubernetes.io/managed-by=kubeaws`"
                   "; on a member: `kubeadm certs check-expiration`")


# -- the plan's warning -----------------------------------------------------------------------------------
def plan_warnings(spec: ClusterSpec, ctx: AwsContext, *, now: dt.datetime | None = None) -> list[str]:
    """The plan's warning when the control plane's certificates expire within 30 days (kubeadm clusters that
    exist): from the members' launch times, and from the API server's certificate for a public endpoint (not
    on the local emulator). Read failures leave the plan alone."""
    if spec.spec.mode != "kubeadm":
        return []
    now = now or dt.datetime.now(dt.UTC)
    try:
        soonest = _oldest_member(spec, ctx)
    except (ClientError, BotoCoreError):
        soonest = None
    served = None if ctx.settings.endpoint_url or spec.spec.access.api_endpoint != "public" else _served(spec, ctx)
    candidates = [found for found in (soonest, served) if found is not None]
    if not candidates:
        return []
    when, why = min(candidates)
    days = (when - now).total_seconds() / 86400
    if days > WARN_DAYS:
        return []
    state = "expired" if days < 0 else f"expire in {days:.0f} days"
    return [f"control-plane certificates {state} ({when:%Y-%m-%d} UTC, {why}): {REMEDY}; `kubeaws doctor -f "
            "SPEC --live` lists every certificate"]


def _oldest_member(spec: ClusterSpec, ctx: AwsContext) -> tuple[dt.datetime, str] | None:
    """(launch time + one year, why) of the running control-plane member launched first."""
    from kubeaws.aws.tags import k8s_cluster_tag
    from kubeaws.model.control_plane import MEMBER_TAG

    reservations = ctx.paginate("ec2", "describe_instances", "Reservations", Filters=[
        {"Name": f"tag:{k8s_cluster_tag(spec.metadata.name)}", "Values": ["owned"]},
        {"Name": "tag-key", "Values": [MEMBER_TAG]},
        {"Name": "instance-state-name", "Values": ["running"]}])
    launched = sorted((i["LaunchTime"], i["InstanceId"]) for r in reservations for i in r["Instances"]
                      if isinstance(i.get("LaunchTime"), dt.datetime))
    if not launched:
        return None
    first, iid = launched[0]
    return (first.astimezone(dt.UTC) + LEAF_VALIDITY,
            f"member instance {iid} launched {first:%Y-%m-%d}: kubeadm signed its certificates for a year then")


def _served(spec: ClusterSpec, ctx: AwsContext) -> tuple[dt.datetime, str] | None:
    from kubeaws.access import api_server
    from kubeaws.tunnel import endpoint_of

    server = api_server(spec, ctx)
    if server is None:
        return None
    host, port = endpoint_of(server)
    try:
        cert = served_certificate(host, port)
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc, f"the API server's certificate at {host}:{port}"
