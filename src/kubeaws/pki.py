"""Cluster certificates and keys, pure (no AWS, no files): the CAs kubeadm expects, the service-account key
pair and the secrets-encryption key; kubeadm's discovery CA hash; admin kubeconfigs signed by the cluster CA
and merged into an existing kubeconfig without clobbering other clusters.

Called by the `ClusterPki` kind (resources/pki.py, generates once and uploads to the state bucket) and by
whoever writes the admin kubeconfig (api/cli). Secrets returned here must never be logged.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from collections.abc import Sequence
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
#: Tolerated clock skew between this machine and the cluster: certificates start this much in the past.
SKEW = datetime.timedelta(minutes=5)
RSA_BITS = 2048

#: (file prefix under pki/, CN) of the three CAs kubeadm uses.
CAS = (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca"))
#: Every file generate_cluster_pki returns, relative to the bucket's `pki/` prefix.
PKI_FILES = ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key",
             "sa.key", "sa.pub", "encryption-key")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def _key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#1 ("RSA PRIVATE KEY") / SEC1 ("EC PRIVATE KEY"), the encodings kubeadm itself writes."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def make_ca(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed RSA 2048 CA valid 10 years, shaped like kubeadm's: (cert PEM, key PEM)."""
    key = _rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW).not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def generate_cluster_pki() -> dict[str, bytes]:
    """Every file of `pki/` (see PKI_FILES): cluster CA, front-proxy CA, etcd CA, service-account key pair
    (RSA 2048, public key as SubjectPublicKeyInfo "PUBLIC KEY") and 32 random bytes, base64, for secrets
    encryption at rest."""
    files: dict[str, bytes] = {}
    for prefix, cn in CAS:
        files[f"{prefix}.crt"], files[f"{prefix}.key"] = make_ca(cn)
    sa = _rsa_key()
    files["sa.key"] = _key_pem(sa)
    files["sa.pub"] = sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    files["encryption-key"] = base64.b64encode(os.urandom(32))
    return files


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


def ca_cert_hash(ca_pem: bytes | str) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: "sha256:" + hex SHA-256 of the CA's SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(_as_bytes(ca_pem))
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def client_certificate(ca_pem: bytes | str, ca_key_pem: bytes | str, user: str, groups: Sequence[str],
                       lifetime_hours: float) -> tuple[bytes, bytes]:
    """A client certificate (CN=user, O=each group; ECDSA P-256 key) signed by the CA: (cert PEM, key PEM)."""
    ca = x509.load_pem_x509_certificate(_as_bytes(ca_pem))
    ca_key = serialization.load_pem_private_key(_as_bytes(ca_key_pem), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the cluster CA key must be RSA or ECDSA")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
                        + [x509.NameAttribute(NameOID.COMMON_NAME, user)])
    now = _now()
    not_after = min(now + datetime.timedelta(hours=lifetime_hours), ca.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - SKEW).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def admin_kubeconfig(cluster: str, server: str, ca_pem: bytes | str, ca_key_pem: bytes | str,
                     lifetime_hours: float, user: str = "kubeaws-admin",
                     groups: Sequence[str] = ("system:masters",)) -> str:
    """A kubeconfig (YAML) for `cluster` at `server` (https://host:port) with a client certificate of
    `lifetime_hours` embedded: cluster entry `<cluster>`, user `<user>@<cluster>`, context `<cluster>`."""
    cert, key = client_certificate(ca_pem, ca_key_pem, user, groups, lifetime_hours)
    user_name = f"{user}@{cluster}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server,
                                                   "certificate-authority-data": _b64(_as_bytes(ca_pem))}}],
        "users": [{"name": user_name, "user": {"client-certificate-data": _b64(cert),
                                               "client-key-data": _b64(key)}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user_name}}],
        "current-context": cluster,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def merge_kubeconfig(existing_yaml: str | None, new_yaml: str) -> str:
    """`new_yaml`'s clusters, users and contexts added to `existing_yaml`, replacing entries of the same name
    and keeping every other one; current-context is set only when the existing file has none."""
    new: dict[str, Any] = yaml.safe_load(new_yaml) or {}
    merged: dict[str, Any] = (yaml.safe_load(existing_yaml) if existing_yaml else None) or {}
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in ("clusters", "users", "contexts"):
        entries: list[dict[str, Any]] = list(merged.get(section) or [])
        for entry in new.get(section) or []:
            at = next((i for i, e in enumerate(entries) if e.get("name") == entry.get("name")), None)
            if at is None:
                entries.append(entry)
            else:
                entries[at] = entry
        merged[section] = entries
    if not merged.get("current-context") and new.get("current-context"):
        merged["current-context"] = new["current-context"]
    return yaml.safe_dump(merged, sort_keys=False)
