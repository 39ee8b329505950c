"""EKS authentication (eks_auth.py, cli/eks.py): the token is a presigned STS GetCallerIdentity URL on the
regional endpoint, valid 60 s, signing the `x-k8s-aws-id` header; the ExecCredential's shape and expiry
format; the kubeconfig's exec user; `kubeaws token` through typer's CliRunner (offline, fake credentials)."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import botocore.session
import pytest
import yaml
from typer import Typer
from typer.testing import CliRunner

from kubeaws.cli.eks import register
from kubeaws.eks_auth import TOKEN_PREFIX, eks_kubeconfig, eks_token, token_from_url, url_from_token

FAKE = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


@pytest.fixture(autouse=True)
def _fake_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/kubeaws-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kubeaws-test-credentials")
    for key, value in FAKE.items():
        monkeypatch.setenv(key, value)


def _session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.set_credentials("AKIDEXAMPLE", "secret")
    return session


def _check_token(token: str, cluster: str, region: str) -> None:
    assert token.startswith(TOKEN_PREFIX) and not token.endswith("=")
    assert "+" not in token and "/" not in token  # base64url
    url = urlsplit(url_from_token(token))
    assert url.scheme == "https" and url.netloc == f"sts.{region}.amazonaws.com" and url.path == "/"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60" and query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"].split(";")
    assert "host" in query["X-Amz-SignedHeaders"].split(";")
    assert f"/{region}/sts/aws4_request" in query["X-Amz-Credential"]
    assert cluster not in url.query  # the cluster travels as a signed header, not a parameter
    assert len(query["X-Amz-Signature"]) == 64


def test_token_is_a_presigned_get_caller_identity_url() -> None:
    cred = eks_token("demo", "eu-west-1", session=_session())
    _check_token(cred["status"]["token"], "demo", "eu-west-1")


def test_signature_depends_on_the_cluster() -> None:
    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    one = eks_token("one", "us-east-1", session=_session(), now=now)["status"]["token"]
    two = eks_token("two", "us-east-1", session=_session(), now=now)["status"]["token"]
    assert one != two


def test_exec_credential_shape_and_expiry() -> None:
    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cred = eks_token("demo", "us-east-1", session=_session(), now=now)
    assert cred["kind"] == "ExecCredential" and cred["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert cred["spec"] == {}
    assert cred["status"]["expirationTimestamp"] == "2030-01-02T03:18:05Z"
    fresh = eks_token("demo", "us-east-1", session=_session())["status"]["expirationTimestamp"]
    parsed = dt.datetime.strptime(fresh, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert dt.timedelta(minutes=13) < parsed - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=14)


def test_token_round_trip() -> None:
    for url in ("https://a", "https://ab", "https://abc"):  # every padding length
        assert url_from_token(token_from_url(url)) == url
    with pytest.raises(ValueError, match="k8s-aws-v1"):
        url_from_token("nope")


def test_boto3_session_is_accepted() -> None:
    import boto3

    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    _check_token(eks_token("demo", "ap-south-1", session=session)["status"]["token"], "demo", "ap-south-1")


def test_kubeconfig_exec_user() -> None:
    doc = yaml.safe_load(eks_kubeconfig("demo", "us-west-2", "https://X.gr7.us-west-2.eks.amazonaws.com",
                                        "Q0EK", profile="prod"))
    assert doc["kind"] == "Config" and doc["current-context"] == "demo"
    assert doc["clusters"][0]["cluster"] == {"server": "https://X.gr7.us-west-2.eks.amazonaws.com",
                                             "certificate-authority-data": "Q0EK"}
    user = doc["users"][0]
    assert doc["contexts"][0]["context"] == {"cluster": "demo", "user": user["name"]}
    ex = user["user"]["exec"]
    assert ex["apiVersion"] == "client.authentication.k8s.io/v1beta1" and ex["command"] == "kubeaws"
    assert ex["args"] == ["token", "--cluster", "demo", "--region", "us-west-2"]
    assert ex["env"] == [{"name": "AWS_PROFILE", "value": "prod"}]
    plain = yaml.safe_load(eks_kubeconfig("demo", "us-west-2", "https://x", "Q0EK"))
    assert "env" not in plain["users"][0]["user"]["exec"]


def _app() -> Typer:
    app = Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # keep `token` a subcommand, as on the real app
        """kubeaws."""

    return app


def test_cli_token_prints_an_exec_credential() -> None:
    result = CliRunner().invoke(_app(), ["token", "--cluster", "demo", "--region", "eu-central-1"])
    assert result.exit_code == 0, result.output
    cred = json.loads(result.stdout)
    assert cred["kind"] == "ExecCredential"
    _check_token(cred["status"]["token"], "demo", "eu-central-1")


def test_cli_token_region_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    result = CliRunner().invoke(_app(), ["token", "--cluster", "demo"])
    assert result.exit_code == 0, result.output
    _check_token(json.loads(result.stdout)["status"]["token"], "demo", "ca-central-1")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "sa-east-1")
    result = CliRunner().invoke(_app(), ["token", "--cluster", "demo"])
    _check_token(json.loads(result.stdout)["status"]["token"], "demo", "sa-east-1")


def test_cli_token_without_region_or_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(_app(), ["token", "--cluster", "demo"])
    assert result.exit_code == 2 and "no AWS region" in result.output
    for key in FAKE:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(_app(), ["token", "--cluster", "demo", "--region", "us-east-1"])
    assert result.exit_code == 1 and "no AWS credentials" in result.output
