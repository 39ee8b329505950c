"""kubeaws.pki (pure): the generated CAs and keys are what kubeadm expects, the discovery hash matches an
independent computation, admin kubeconfigs carry a client certificate the CA verifies, and merging keeps
other clusters' entries."""

from __future__ import annotations

import base64
import datetime
import hashlib
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeaws.pki import PKI_FILES, admin_kubeconfig, ca_cert_hash, generate_cluster_pki, merge_kubeconfig


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return generate_cluster_pki()


def test_generates_every_file_kubeadm_needs(files: dict[str, bytes]) -> None:
    assert sorted(files) == sorted(PKI_FILES)
    for prefix, cn in (("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")):
        cert = x509.load_pem_x509_certificate(files[f"{prefix}.crt"])
        key = serialization.load_pem_private_key(files[f"{prefix}.key"], password=None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)
        assert files[f"{prefix}.key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    sa = serialization.load_pem_private_key(files["sa.key"], password=None)
    pub = serialization.load_pem_public_key(files["sa.pub"])
    assert isinstance(sa, rsa.RSAPrivateKey) and sa.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]
    assert files["sa.pub"].startswith(b"-----BEGIN PUBLIC KEY-----")
    assert len(base64.b64decode(files["encryption-key"], validate=True)) == 32
    assert generate_cluster_pki()["ca.crt"] != files["ca.crt"], "fresh keys every call"


def test_ca_cert_hash_matches_an_independent_computation(files: dict[str, bytes]) -> None:
    got = ca_cert_hash(files["ca.crt"])
    assert got == ca_cert_hash(files["ca.crt"].decode())
    openssl = shutil.which("openssl")
    if openssl:  # kubeadm's documented recipe
        pub = subprocess.run([openssl, "x509", "-pubkey", "-noout"], input=files["ca.crt"], capture_output=True,
                             check=True).stdout
        der = subprocess.run([openssl, "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                             check=True).stdout
    else:  # the SubjectPublicKeyInfo straight from the certificate's ASN.1
        der = x509.load_pem_x509_certificate(files["ca.crt"]).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert got == "sha256:" + hashlib.sha256(der).hexdigest()


def _entry(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(e for e in config[section] if e["name"] == name)
    return found


def test_admin_kubeconfig_client_cert_verifies_against_the_ca(files: dict[str, bytes]) -> None:
    text = admin_kubeconfig("dev", "https://api.example:6443", files["ca.crt"], files["ca.key"], 12)
    config = yaml.safe_load(text)
    assert config["current-context"] == "dev"
    cluster = _entry(config, "clusters", "dev")["cluster"]
    assert cluster["server"] == "https://api.example:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == files["ca.crt"]
    context = _entry(config, "contexts", "dev")["context"]
    user = _entry(config, "users", context["user"])["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    ca = x509.load_pem_x509_certificate(files["ca.crt"])
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubeaws-admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(hours=12) <= lifetime <= datetime.timedelta(hours=12, minutes=6)
    key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_merge_adds_replaces_and_keeps_other_clusters(files: dict[str, bytes]) -> None:
    other = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "prod",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}},
                     {"name": "dev", "cluster": {"server": "https://stale:6443"}}],
        "users": [{"name": "prod-admin", "user": {"token": "x"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod-admin"}}],
    })
    new = admin_kubeconfig("dev", "https://api.example:6443", files["ca.crt"], files["ca.key"], 1)
    merged = yaml.safe_load(merge_kubeconfig(other, new))
    assert merged["current-context"] == "prod", "an existing current context is kept"
    assert [c["name"] for c in merged["clusters"]] == ["prod", "dev"]
    assert _entry(merged, "clusters", "dev")["cluster"]["server"] == "https://api.example:6443"
    assert {c["name"] for c in merged["contexts"]} == {"prod", "dev"}
    assert {u["name"] for u in merged["users"]} == {"prod-admin", "kubeaws-admin@dev"}
    again = yaml.safe_load(merge_kubeconfig(yaml.safe_dump(merged), new))
    assert len(again["clusters"]) == 2 and len(again["users"]) == 2 and len(again["contexts"]) == 2
    fresh = yaml.safe_load(merge_kubeconfig(None, new))
    assert fresh["current-context"] == "dev" and len(fresh["contexts"]) == 1
