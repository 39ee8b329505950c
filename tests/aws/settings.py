"""Settings of the real-AWS suite (environment variables KUBEAWS_AWS_E2E*), the guards that skip it, and the
few facts it needs about the runner: its AWS identity (STS GetCallerIdentity, bounded), its public address
(https://checkip.amazonaws.com) and its kubectl version.

The parsing and the guard decisions are pure (unit-tested in test_helpers.py); `caller_identity`,
`runner_ip` and `kubectl_client_minor` touch the network or run a program.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_ENABLE = "KUBEAWS_AWS_E2E"
ENV_REGION = "KUBEAWS_AWS_E2E_REGION"
ENV_KEEP = "KUBEAWS_AWS_E2E_KEEP"
ENV_REPORT = "KUBEAWS_AWS_E2E_REPORT"
ENV_ADMIN_CIDR = "KUBEAWS_AWS_E2E_ADMIN_CIDR"
ENV_ARTIFACTS = "KUBEAWS_AWS_E2E_ARTIFACTS"
ENV_RUN_ID = "KUBEAWS_AWS_E2E_RUN_ID"
ENV_TIMEOUT_SCALE = "KUBEAWS_AWS_E2E_TIMEOUT_SCALE"
ENV_SSH_KEY = "KUBEAWS_AWS_E2E_SSH_KEY"
ENV_TERMINATE_MEMBER = "KUBEAWS_AWS_E2E_TERMINATE_MEMBER"

DEFAULT_REGION = "us-east-1"
CHECKIP_URL = "https://checkip.amazonaws.com"
#: What tests/conftest.py puts in the environment so that unit tests never reach AWS.
FAKE_ACCESS_KEY = "testing"
#: Bounded credential check: never hang on an unreachable endpoint.
STS_CONNECT_TIMEOUT = 5
STS_READ_TIMEOUT = 10
RUN_ID = re.compile(r"^[a-z0-9]{4,8}$")
TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """A KUBEAWS_AWS_E2E* variable has a value the suite cannot use."""


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in TRUE


def normalize_cidr(value: str) -> str:
    """`198.51.100.7` -> `198.51.100.7/32`; a CIDR is kept (network address required). Refuses the whole
    internet: the suite exposes the API and a load balancer to this range only."""
    text = value.strip()
    try:
        net = ipaddress.ip_network(text if "/" in text else f"{text}/32", strict=True)
    except ValueError as exc:
        raise SettingsError(f"{ENV_ADMIN_CIDR}={value!r} is not an IPv4 address or CIDR ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise SettingsError(f"{ENV_ADMIN_CIDR}={value!r}: kubeaws admin CIDRs are IPv4")
    if net.prefixlen < 8:
        raise SettingsError(f"{ENV_ADMIN_CIDR}={value!r} is far too wide: give the runner's own address (/32) "
                            "or its NAT range")
    return str(net)


@dataclass(frozen=True)
class Settings:
    """What the KUBEAWS_AWS_E2E* variables say (tests/aws/README.md lists them)."""

    enabled: bool = False
    region: str = DEFAULT_REGION
    keep: bool = False
    report_path: Path | None = None
    admin_cidr: str | None = None
    artifacts: Path | None = None
    run_id: str | None = None
    timeout_scale: float = 1.0
    ssh_key: str | None = None
    terminate_member: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse the environment; SettingsError names the variable and the fix."""
        region = env.get(ENV_REGION, "").strip() or DEFAULT_REGION
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            raise SettingsError(f"{ENV_REGION}={region!r} is not an AWS region name (e.g. us-east-1)")
        scale_text = env.get(ENV_TIMEOUT_SCALE, "").strip() or "1"
        try:
            scale = float(scale_text)
        except ValueError:
            raise SettingsError(f"{ENV_TIMEOUT_SCALE}={scale_text!r} is not a number (e.g. 1.5)") from None
        if not 0.1 <= scale <= 10:
            raise SettingsError(f"{ENV_TIMEOUT_SCALE}={scale_text!r}: use a factor between 0.1 and 10")
        run_id = env.get(ENV_RUN_ID, "").strip() or None
        if run_id is not None and not RUN_ID.match(run_id):
            raise SettingsError(f"{ENV_RUN_ID}={run_id!r}: use 4-8 lowercase letters or digits (it goes into the "
                                "cluster names)")
        member_text = env.get(ENV_TERMINATE_MEMBER, "").strip() or "1"
        if member_text not in ("0", "1", "2"):
            raise SettingsError(f"{ENV_TERMINATE_MEMBER}={member_text!r}: use 0, 1 or 2 (the member index)")
        admin = env.get(ENV_ADMIN_CIDR, "").strip()
        report = env.get(ENV_REPORT, "").strip()
        artifacts = env.get(ENV_ARTIFACTS, "").strip()
        return cls(
            enabled=env.get(ENV_ENABLE, "").strip() == "1",
            region=region,
            keep=_flag(env, ENV_KEEP),
            report_path=Path(report).expanduser() if report else None,
            admin_cidr=normalize_cidr(admin) if admin else None,
            artifacts=Path(artifacts).expanduser() if artifacts else None,
            run_id=run_id,
            timeout_scale=scale,
            ssh_key=env.get(ENV_SSH_KEY, "").strip() or None,
            terminate_member=int(member_text),
        )

    def artifacts_dir(self, run_id: str) -> Path:
        """Where this run keeps its spec copies, kubeconfigs, logs, timings and diagnostics."""
        return self.artifacts or Path(tempfile.gettempdir()) / "kubeaws-e2e" / run_id


def static_skip_reason(env: Mapping[str, str], kubectl: str | None) -> str | None:
    """Why the suite must not run, decided without any network call (None: go on to the credential check)."""
    if env.get(ENV_ENABLE, "").strip() != "1":
        return (f"the real-AWS suite creates two clusters and costs money: set {ENV_ENABLE}=1 to run it "
                "(see tests/aws/README.md)")
    local = [name for name in ("AWS_ENDPOINT_URL", "KUBEAWS_LOCAL") if env.get(name)]
    if local:
        return (f"{' and '.join(local)} set: this suite runs against real AWS only; unset "
                f"{'them' if len(local) > 1 else 'it'} (the emulator has its own tests)")
    if env.get("AWS_ACCESS_KEY_ID") == FAKE_ACCESS_KEY:
        return ("AWS_ACCESS_KEY_ID is the unit tests' fake 'testing' key (tests/conftest.py sets it when other tests "
                "run in the same session): run the real-AWS suite on its own, `pytest -m aws tests/aws`")
    if kubectl is None:
        return "kubectl is not on PATH: the smoke workload needs it (any version within one minor of the cluster)"
    return None


def parse_kubectl_minor(version_json: str) -> int:
    """The client minor of `kubectl version --client -o json` ("32+" from some distributions -> 32)."""
    doc = json.loads(version_json)
    minor = str((doc.get("clientVersion") or {}).get("minor", ""))
    digits = re.match(r"\d+", minor)
    if not digits:
        raise ValueError(f"no client minor version in kubectl's answer: {version_json[:200]!r}")
    return int(digits.group())


def kubectl_skew_reason(client_minor: int, cluster_version: str) -> str | None:
    """kubectl is supported within one minor of the API server; None when it is."""
    cluster_minor = int(cluster_version.split(".")[1])
    if abs(client_minor - cluster_minor) <= 1:
        return None
    return (f"kubectl 1.{client_minor} is more than one minor away from the clusters' Kubernetes {cluster_version}: "
            f"install kubectl 1.{cluster_minor - 1}..1.{cluster_minor + 1}")


def kubectl_client_minor(kubectl: str) -> int:
    out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30,
                         check=True)
    return parse_kubectl_minor(out.stdout)


def caller_identity(region: str) -> tuple[str, str]:
    """(account ID, caller ARN) from STS GetCallerIdentity with short timeouts and two attempts; raises on no
    or bad credentials (the caller turns that into a skip)."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=STS_CONNECT_TIMEOUT, read_timeout=STS_READ_TIMEOUT,
                    retries={"max_attempts": 2, "mode": "standard"})
    sts = boto3.Session(region_name=region).client("sts", region_name=region, config=config)
    answer = sts.get_caller_identity()
    return str(answer["Account"]), str(answer["Arn"])


def runner_ip(timeout: float = 10.0) -> str:
    """The runner's public IPv4 address as AWS sees it."""
    with urllib.request.urlopen(CHECKIP_URL, timeout=timeout) as answer:
        text = answer.read(64).decode().strip()
    address = ipaddress.ip_address(text)
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError(f"{CHECKIP_URL} answered {text!r}, not an IPv4 address")
    return str(address)


def e2e_requested(markexpr: str, env: Mapping[str, str] = os.environ) -> bool:
    """Whether this pytest run selects the `aws` tests (`-m aws`, not the default `-m 'not aws'`) with
    KUBEAWS_AWS_E2E=1: only then does the suite need the runner's real credentials."""
    selects = bool(re.search(r"(?<!not )\baws\b", markexpr.strip()))
    return selects and env.get(ENV_ENABLE, "").strip() == "1"


# -- what the suite needs from the kubeaws CLI ---------------------------------------------------------------
#: command -> options the suite passes (checked with `kubeaws <command> --help` before anything is created).
REQUIRED_CLI: dict[str, tuple[str, ...]] = {
    "plan": ("--file", "--output"),
    "apply": ("--file", "--yes", "--output"),
    "status": ("--file", "--output"),
    "doctor": ("--file", "--live", "--wait", "--output"),
    "kubeconfig": ("--file", "--output-file", "--lifetime-hours"),
    "delete": ("--file", "--yes", "--output"),
}


def missing_options(help_text: str, options: tuple[str, ...]) -> list[str]:
    """The options of `options` that a command's --help does not show."""
    return [o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", help_text)]


def kubeaws_command() -> list[str]:
    """The `kubeaws` console script of this venv (what users run), else `python -m kubeaws.cli.main`."""
    script = Path(sys.executable).with_name("kubeaws")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kubeaws.cli.main"]


def missing_capabilities(kubeaws: list[str]) -> list[str]:
    """Each command or option of REQUIRED_CLI that this kubeaws does not have, as `kubeaws <cmd> <option>`."""
    missing = []
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    for command, options in REQUIRED_CLI.items():
        out = subprocess.run([*kubeaws, command, "--help"], capture_output=True, text=True, timeout=60, env=env)
        if out.returncode != 0:
            missing.append(f"kubeaws {command} (exit {out.returncode}: {(out.stderr or out.stdout).strip()[:200]})")
            continue
        missing.extend(f"kubeaws {command} {option}" for option in missing_options(out.stdout, options))
    return missing


def has_command(kubeaws: list[str], command: str) -> bool:
    out = subprocess.run([*kubeaws, command, "--help"], capture_output=True, text=True, timeout=60)
    return out.returncode == 0
