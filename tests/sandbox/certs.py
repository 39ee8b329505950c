"""Certificates and kubeconfigs the kubeadm stand-in writes, signed by the CAs the boot script downloaded from
the state bucket — what `kubeadm init phase certs` / `kubeconfig` produce (names, subjects, SANs and usages
from kubeadm's certs list, cmd/kubeadm/app/phases/certs/certlist.go, and kubeconfig phase,
cmd/kubeadm/app/phases/kubeconfig/kubeconfig.go). Leaf keys are ECDSA P-256 (kubeadm's
`encryptionAlgorithm: ECDSA-P256`) rather than the default RSA-2048, to keep the sandbox fast; the real etcd
serves and checks them the same way.

Used by tests/sandbox/kubeadm_effects.py.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH


@dataclass(frozen=True)
class Leaf:
    """One certificate of kubeadm's list: file base name (under the pki dir), signing CA base name, subject
    common name, organizations, usages."""

    name: str
    ca: str
    cn: str
    orgs: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = (CLIENT,)
    etcd_sans: bool = False
    apiserver_sans: bool = False


#: kubeadm's certificate list (certlist.go: GetDefaultCertList), by phase name.
LEAVES: dict[str, Leaf] = {
    "apiserver": Leaf("apiserver", "ca", "kube-apiserver", (), (SERVER,), apiserver_sans=True),
    "apiserver-kubelet-client": Leaf("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
                                     ("kubeadm:cluster-admins",)),
    "front-proxy-client": Leaf("front-proxy-client", "front-proxy-ca", "front-proxy-client"),
    "etcd-server": Leaf("etcd/server", "etcd/ca", "@node", (), (SERVER, CLIENT), etcd_sans=True),
    "etcd-peer": Leaf("etcd/peer", "etcd/ca", "@node", (), (SERVER, CLIENT), etcd_sans=True),
    "etcd-healthcheck-client": Leaf("etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client"),
    "apiserver-etcd-client": Leaf("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client"),
}
CAS = {"ca": "kubernetes", "front-proxy-ca": "front-proxy-ca", "etcd/ca": "etcd-ca"}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def load_ca(pki: Path, name: str) -> tuple[x509.Certificate, object]:
    cert = x509.load_pem_x509_certificate((pki / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{name}.key").read_bytes(), None)
    return cert, key


def make_ca(pki: Path, name: str) -> None:
    """A CA as kubeadm makes it when none is present (init on a fresh host)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CAS[name])])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (pki / f"{name}.crt").parent.mkdir(parents=True, exist_ok=True)
    (pki / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki / f"{name}.key").write_bytes(_key_pem(key))


def issue(ca_cert: x509.Certificate, ca_key: object, cn: str, orgs: tuple[str, ...] = (),
          usages: tuple[x509.ObjectIdentifier, ...] = (CLIENT,), dns: tuple[str, ...] = (),
          ips: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) signed by the CA, valid one year as kubeadm's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    name.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    builder = (x509.CertificateBuilder().subject_name(x509.Name(name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(_now() - datetime.timedelta(minutes=5))
               .not_valid_after(_now() + datetime.timedelta(days=365))
               .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def write_leaf(pki: Path, leaf: Leaf, node: str, node_ip: str, extra_sans: tuple[str, ...] = (),
               service_ip: str = "10.96.0.1") -> bool:
    """Write one certificate unless a valid one signed by its CA exists (kubeadm reuses those); True if
    written."""
    crt, keyfile = pki / f"{leaf.name}.crt", pki / f"{leaf.name}.key"
    ca_cert, ca_key = load_ca(pki, leaf.ca)
    if crt.exists() and keyfile.exists():
        existing = x509.load_pem_x509_certificate(crt.read_bytes())
        if existing.issuer == ca_cert.subject:
            return False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    if leaf.etcd_sans:
        dns, ips = (node, "localhost"), (node_ip, "127.0.0.1", "::1")
    if leaf.apiserver_sans:
        names = tuple(s for s in extra_sans if not _is_ip(s))
        dns = (node, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local", *names)
        ips = (service_ip, node_ip, *(s for s in extra_sans if _is_ip(s)))
    cn = node if leaf.cn == "@node" else leaf.cn
    cert, key = issue(ca_cert, ca_key, cn, leaf.orgs, leaf.usages, dns, ips)
    crt.parent.mkdir(parents=True, exist_ok=True)
    crt.write_bytes(cert)
    keyfile.write_bytes(key)
    keyfile.chmod(0o600)
    return True


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def kubeconfig(pki: Path, server: str, cluster: str, user: str, orgs: tuple[str, ...]) -> str:
    """A kubeconfig with an embedded client certificate signed by the cluster CA."""
    ca_cert, ca_key = load_ca(pki, "ca")
    cert, key = issue(ca_cert, ca_key, user, orgs)
    ca_pem = (pki / "ca.crt").read_bytes()
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server,
                                                    "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"client-certificate-data": base64.b64encode(cert).decode(),
                                          "client-key-data": base64.b64encode(key).decode()}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def spki_hash(ca_pem: bytes) -> str:
    """kubeadm's CA pin: sha256 of the CA certificate's DER SubjectPublicKeyInfo (pubkeypin.Hash)."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "sha256:" + digest.finalize().hex()
