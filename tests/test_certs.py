"""Certificate expiry (kubeaws.doctor.live_certs, the `certs` part of the control-plane probe, the plan's warning),
with certificates made by `cryptography` with chosen expiry dates: the thresholds (30 and 7 days, a CA within
a year), the probe's real `sh` script reading a member's /etc/kubernetes (no key ever printed), the API
server's certificate read from the client side over real TLS on loopback (an expired one too), and the plan
warning from the members' launch times on the moto server and from one handshake (not on the emulator). The
remedy, replacement, is checked on the rendered boot script: a new member's bucket download holds only CAs,
so kubeadm signs its leaf certificates afresh."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubeaws import api, etcd_ops, member_probe
from kubeaws.aws.session import AwsContext, AwsSettings
from kubeaws.doctor import live_certs
from kubeaws.doctor.live_control_plane import check_control_plane
from kubeaws.kube_client import KubeClient
from kubeaws.pki import PKI_FILES
from tests import kube_objects as ko
from tests.helpers import make_spec
from tests.kube_fake import FakeApi, key_pem, pem, serve, url
from tests.probe_runner import ProbeNodes

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
Key = ec.EllipticCurvePrivateKey


def make(cn: str, days: float, *, ca: bool = False, issuer: tuple[x509.Certificate, Key] | None = None,
         server: bool = False) -> tuple[x509.Certificate, Key]:
    """A certificate for `cn` expiring `days` from NOW (negative: expired), self-signed or by `issuer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(signer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=400)).not_valid_after(NOW + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def seen(cert: x509.Certificate, where: str) -> live_certs.Seen:
    return live_certs.Seen(cert, where)


def test_thresholds_and_one_finding_per_certificate() -> None:
    ca, ca_key = make("kubernetes", 3000, ca=True)
    old_ca, _ = make("etcd-ca", 300, ca=True)
    dying_ca, _ = make("front-proxy-ca", 5, ca=True)
    leaves = {days: make(f"leaf-{days}", days, issuer=(ca, ca_key))[0] for days in (40, 30.5, 29, 8, 6, -1)}
    found = live_certs.cert_findings([seen(ca, "a:pki/ca.crt"), seen(ca, "b:pki/ca.crt"), seen(old_ca, "a:e"),
                                      seen(dying_ca, "a:f"), *(seen(c, f"a:{d}") for d, c in leaves.items()),
                                      seen(leaves[29], "b:admin.conf")], NOW)
    got = [(f.severity, f.check, f.message.split(" ")[1]) for f in found]
    assert got == [("error", "certs.expiring", "leaf--1"), ("error", "certs.ca-expiring", "front-proxy-ca"),
                   ("error", "certs.expiring", "leaf-6"), ("warning", "certs.expiring", "leaf-8"),
                   ("warning", "certs.expiring", "leaf-29"), ("warning", "certs.ca-expiring", "etcd-ca")]
    assert "EXPIRED on" in found[0].message and "in 6 days" in found[2].message
    assert "(a:29, b:admin.conf)" in found[4].message  # one certificate, every place it was read
    assert "rollout -f SPEC --control-plane-only --force" in found[3].hint
    assert "not renewed by replacing" in found[5].hint


def test_served_certificate_is_read_even_when_expired() -> None:
    """One handshake that verifies nothing: kubeaws' own client refuses the expired certificate, the reader
    still tells when it expired."""
    ca, ca_key = make("kubernetes", 3000, ca=True)
    expired, key = make("kube-apiserver", -2, issuer=(ca, ca_key), server=True)
    with serve(pem(expired), key_pem(key)) as server:
        host, port = "127.0.0.1", server.server_address[1]
        got = live_certs.served_certificate(host, port)
        assert got.serial_number == expired.serial_number
        with pytest.raises(Exception, match="certificate has expired"):
            KubeClient(url(server), pem(ca), "k8s-aws-v1.x").get("/api/v1/nodes")
    (finding,) = live_certs.cert_findings([seen(got, "API endpoint")], NOW)
    assert (finding.severity, finding.check) == ("error", "certs.expiring") and "EXPIRED" in finding.message
    with pytest.raises(OSError):
        live_certs.served_certificate(host, port, timeout=1)  # nothing listens any more


# -- the doctor: every member's files through the probe ------------------------------------------------------
def host(root: Path, ca: tuple[x509.Certificate, Key], days: dict[str, float]) -> dict[str, int]:
    """A member's /etc/kubernetes as kubeadm leaves it: CAs, leaf certificates and keys, kubeconfigs with
    embedded client certificates and keys; {file: serial} of what was written."""
    k8s = root / "etc/kubernetes"
    (k8s / "pki/etcd").mkdir(parents=True)
    serials = {}
    (k8s / "pki/ca.crt").write_text(pem(ca[0]))
    (k8s / "pki/ca.key").write_text(key_pem(ca[1]))
    (k8s / "pki/sa.pub").write_text("not a certificate\n")
    for name, d in days.items():
        cert, key = make(name.split("/")[-1].split(".")[0], d, issuer=ca)
        serials[name] = cert.serial_number
        if name.endswith(".conf"):
            user = {"client-certificate-data": base64.b64encode(pem(cert).encode()).decode(),
                    "client-key-data": base64.b64encode(key_pem(key).encode()).decode()}
            (k8s / name).write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "users": [
                {"name": "u", "user": user}]}))
        else:
            (k8s / name).write_text(pem(cert))
            (k8s / name.replace(".crt", ".key")).write_text(key_pem(key))
    return serials


@pytest.fixture
def api_with(request: Any) -> Iterator[tuple[FakeApi, str, tuple[x509.Certificate, Key]]]:
    ca = make("kubernetes", 3000, ca=True)
    serving, key = make("kube-apiserver", request.param, issuer=ca, server=True)
    with serve(pem(serving), key_pem(key)) as server:
        yield server, pem(ca[0]), ca


@pytest.mark.parametrize("api_with", [200], indirect=True)
def test_doctor_reads_every_members_certificates(endpoint: str, tmp_path: Path, api_with: Any) -> None:
    server, ca_pem, ca = api_with
    spec = make_spec(controlPlane={"count": 3})
    roots = {"cp-a": tmp_path / "a", "cp-b": tmp_path / "b"}
    written = host(roots["cp-a"], ca, {"pki/apiserver.crt": 300, "pki/etcd/server.crt": 20, "admin.conf": 6,
                                       "scheduler.conf": 300})
    host(roots["cp-b"], ca, {"pki/apiserver.crt": 300, "pki/front-proxy-client.crt": 25,
                             "controller-manager.conf": 300})
    for node in roots:
        server.add(ko.node(node, labels={member_probe.CONTROL_PLANE_LABEL: ""}))
    nodes = ProbeNodes(server, roots)
    ctx = AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="dev", policy=nodes.policy())
    bucket = etcd_ops.state_bucket(spec, ctx)
    ctx.call("s3", "create_bucket", Bucket=bucket)
    etcd_ca, _ = make("etcd-ca", 100, ca=True)
    ctx.call("s3", "put_object", Bucket=bucket, Key="pki/etcd/ca.crt", Body=pem(etcd_ca).encode())
    kube = KubeClient(url(server), ca_pem, "k8s-aws-v1.test", nodes.policy())

    found = check_control_plane(spec, ctx, kube=kube, now=NOW.timestamp())

    got = sorted((f.severity, f.check, f.message.rsplit(" (", 1)[-1]) for f in found if f.check.startswith("certs"))
    assert got == [("error", "certs.expiring", "cp-a:admin.conf)"),
                   ("warning", "certs.ca-expiring", "state bucket:pki/etcd/ca.crt)"),
                   ("warning", "certs.expiring", "cp-a:pki/etcd/server.crt)"),
                   ("warning", "certs.expiring", "cp-b:pki/front-proxy-client.crt)")], found
    assert [f.check for f in found if not f.check.startswith("certs")] == ["etcd.unreadable"]  # no etcd pod here
    # The Job of each node: read-only /etc/kubernetes, busybox sh, and nothing but certificates came out.
    assert sorted(j["spec"]["template"]["spec"]["nodeName"] for j in nodes.jobs) == ["cp-a", "cp-b"]
    logs = "\n".join(server.logs.values())
    assert "PRIVATE KEY" not in logs and "client-key-data" not in logs and "not a certificate" not in logs
    assert logs.count("== ") == 5 + 4  # cp-a: ca.crt, 2 leaves, 2 kubeconfigs; cp-b: ca.crt, 2 leaves, 1
    dumped = live_certs.parse_dump("cp-a", next(t for (_, p, c), t in server.logs.items() if "-0-" in p))
    assert {s.cert.serial_number for s in dumped[0]} >= set(written.values()) and dumped[1] == []
    assert not [p for p in server.objects if p.startswith(member_probe.JOBS + "/")]


@pytest.mark.parametrize("api_with", [20], indirect=True)
def test_the_api_servers_certificate_is_read_from_the_client_side(endpoint: str, api_with: Any) -> None:
    """No control-plane node is Ready: the probe cannot run, the certificate the API serves is still read."""
    server, ca_pem, _ = api_with
    nodes = ProbeNodes(server, {})
    ctx = AwsContext(AwsSettings(region="us-east-1", endpoint_url=endpoint), cluster="dev", policy=nodes.policy())
    kube = KubeClient(url(server), ca_pem, "k8s-aws-v1.test", nodes.policy())
    found = check_control_plane(make_spec(), ctx, kube=kube, now=NOW.timestamp())
    got = sorted((f.severity, f.check) for f in found)
    assert got == [("warning", "certs.expiring"), ("warning", "certs.unreadable"), ("warning", "etcd.unreadable")]
    assert any("API endpoint 127.0.0.1:" in f.message and "in 20 days" in f.message for f in found)
    assert nodes.jobs == []


# -- the plan ---------------------------------------------------------------------------------------------
def member_instance(ctx: AwsContext, cluster: str = "dev") -> dict[str, Any]:
    image = ctx.call("ec2", "describe_images", Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
            {"Key": "kubeaws.io/control-plane-member", "Value": "0"}]
    return dict(ctx.call("ec2", "run_instances", ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                         TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0])


def test_plan_warns_from_the_members_launch_times(ctx: AwsContext, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec()
    assert live_certs.plan_warnings(spec, ctx) == []  # no member yet
    launched = member_instance(ctx)["LaunchTime"]
    assert live_certs.plan_warnings(spec, ctx, now=launched + dt.timedelta(days=330)) == []
    (warning,) = live_certs.plan_warnings(spec, ctx, now=launched + dt.timedelta(days=340))
    assert "expire in 25 days" in warning and "--control-plane-only --force" in warning
    (expired,) = live_certs.plan_warnings(spec, ctx, now=launched + dt.timedelta(days=366))
    assert "expired" in expired
    assert live_certs.plan_warnings(make_spec(mode="eks"), ctx, now=launched + dt.timedelta(days=366)) == []

    # In the plan itself: a member whose certificates (here made to last 10 days) expire within 30 days.
    monkeypatch.setattr(live_certs, "LEAF_VALIDITY", dt.timedelta(days=10))

    def no_handshake(*_: Any, **__: Any) -> None:
        raise AssertionError("no TLS handshake on the local emulator")

    monkeypatch.setattr(live_certs, "served_certificate", no_handshake)
    public = make_spec(access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]})
    plan = api.plan(public, ctx)
    assert any(w.startswith("control-plane certificates expire in") for w in plan.warnings), plan.warnings


def test_plan_reads_a_public_api_servers_certificate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against AWS (no emulator), a public endpoint: one handshake; its certificate near expiry is a warning."""
    ca = make("kubernetes", 3000, ca=True)
    serving, key = make("kube-apiserver", 12, issuer=ca, server=True)
    handshakes: list[tuple[str, int]] = []
    real = live_certs.served_certificate

    def counted(host: str, port: int, *args: Any, **kw: Any) -> x509.Certificate:
        handshakes.append((host, port))
        return real(host, port, *args, **kw)

    with serve(pem(serving), key_pem(key)) as server:
        monkeypatch.setattr(live_certs, "served_certificate", counted)
        monkeypatch.setattr(live_certs, "_oldest_member", lambda *_: None)
        monkeypatch.setattr("kubeaws.access.api_server", lambda *_: url(server))
        aws = AwsContext(dataclasses.replace(AwsSettings(region="us-east-1"), endpoint_url=None), cluster="dev")
        public = make_spec(access={"apiEndpoint": "public", "adminCIDRs": ["203.0.113.0/24"]})
        (warning,) = live_certs.plan_warnings(public, aws, now=NOW)
        assert "expire in 12 days" in warning and "API server's certificate at 127.0.0.1" in warning
        assert handshakes == [("127.0.0.1", server.server_address[1])]
        assert live_certs.plan_warnings(make_spec(), aws, now=NOW) == []  # private endpoint: no handshake
        assert len(handshakes) == 1


def test_replacement_renews_the_leaf_certificates() -> None:
    """What a new member downloads from the state bucket is CAs and the service-account key only, and every
    way a member starts runs a kubeadm step that signs its leaf certificates from those CAs; so a replaced
    member (`kubeaws rollout --control-plane-only --force`) has fresh ones."""
    from kubeaws.bootstrap.userdata import render_scripts

    assert set(PKI_FILES) == {"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt",
                              "etcd/ca.key", "sa.key", "sa.pub", "encryption-key"}
    script = render_scripts(make_spec(controlPlane={"count": 3}), "control-plane", "b")["bootstrap-control-plane.sh"]
    files = next(line for line in script.splitlines() if line.startswith("PKI_FILES="))
    assert set(files.split("=", 1)[1].strip('"').split()) == set(PKI_FILES) - {"encryption-key"}
    for signs in ("kubeadm init --config", "kubeadm join --config", "kubeadm join phase control-plane-prepare all",
                  "kubeadm init phase certs all"):
        assert signs in script, signs
