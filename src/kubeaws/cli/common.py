"""Shared pieces of the CLI commands: the cluster-command options, spec loading, the AWS connection (with
`--local`), the confirmation gate, and the mapping of expected errors to exit codes and short messages.

Exit codes: 0 ok, 1 operational failure, 2 bad input (spec errors, bad options). Expected errors never show
a traceback; unexpected ones say how to get it (KUBEAWS_DEBUG=1). boto3 and the engine are imported lazily.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubeaws.cli.output import Out
from kubeaws.errors import KubeawsError, SpecError

if TYPE_CHECKING:
    from kubeaws.aws.session import AwsContext
    from kubeaws.spec.models import ClusterSpec

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
TRUTHY = {"1", "true", "yes", "on"}

CREDENTIALS_HINT = ("set AWS_PROFILE (see `aws configure list-profiles`) or AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY, or use --local to run against the local AWS emulator")


#: AWS error codes that mean the credentials are wrong or expired.
AUTH_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                        "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch"})


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"


#: The options every command shares, defined once so that a letter means the same everywhere: `-o` is the
#: output format, `-f` the spec file (`-` reads it from stdin).
OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format (json and yaml: one "
                                                 "document on stdout, camelCase keys).")]
SpecFile = Annotated[Path, typer.Option("--file", "-f", help="The cluster spec (YAML; - reads it from stdin).",
                                        show_default=False)]
ProfileOpt = Annotated[str | None, typer.Option("--profile", help="AWS profile (default: the SDK's resolution).")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region for the calls (overrides spec.region).")]
LocalOpt = Annotated[bool, typer.Option("--local", help="Use the local AWS emulator (also: KUBEAWS_LOCAL=1).")]
#: What `--parallelism` is when not given: the engine's pool, measured best in bench/scale.py (docs/performance.md).
DEFAULT_PARALLELISM = 8
ParallelismOpt = Annotated[int, typer.Option(
    "--parallelism", min=1, max=64, help="AWS changes at once: resources created, updated or deleted in parallel "
    "(apply, delete), AWS requests in flight (rollout). EC2's request rates are kept at any value.")]
#: Where `-f -` reads from, in error messages (file:line).
STDIN = "<stdin>"


class BadInput(KubeawsError):
    """Bad command-line input (exit 2)."""


@dataclass
class ClusterOptions:
    """The options every cluster command takes."""

    file: Path
    output: OutputFormat = OutputFormat.text
    profile: str | None = None
    region: str | None = None
    local: bool = False

    @property
    def use_local(self) -> bool:
        return self.local or os.environ.get("KUBEAWS_LOCAL", "").strip().lower() in TRUTHY

    def command(self, verb: str) -> str:
        """The shell command that runs `verb` again with the same target (printed to finish a job)."""
        parts = ["kubeaws", verb, "-f", str(self.file)]
        if self.profile:
            parts += ["--profile", self.profile]
        if self.region:
            parts += ["--region", self.region]
        if self.use_local:
            parts.append("--local")
        return shlex.join(parts)


def reads_stdin(path: Path) -> bool:
    """Whether `-f` names standard input (`-f -`)."""
    return str(path) == "-"


def load(path: Path) -> ClusterSpec:
    """Read and validate the spec file, or standard input for `-f -` (problems then say `<stdin>:LINE`):
    SpecError on problems, BadInput when the file is not there."""
    if reads_stdin(path):
        from kubeaws.spec.load import load_spec_text

        if sys.stdin is None or sys.stdin.isatty():
            raise BadInput("-f - reads the spec from stdin, but stdin is a terminal: pipe the spec in "
                           "(e.g. `kubeaws plan -f - < cluster.yaml`)")
        return load_spec_text(sys.stdin.read(), STDIN)
    if not path.exists():
        raise BadInput(f"spec file not found: {path} (create one with `kubeaws init --name NAME --region REGION "
                       f"-f {path}`)")
    if not path.is_file():
        raise BadInput(f"not a file: {path}")
    from kubeaws.spec.load import load_spec

    return load_spec(path)


def connect(spec: ClusterSpec, opts: ClusterOptions, out: Out) -> AwsContext:
    """An AwsContext for the spec. With --local (or KUBEAWS_LOCAL=1) the local emulator is started if needed,
    every call goes to it, and fake credentials are used unless some are configured."""
    endpoint: str | None = None
    if opts.use_local:
        from kubeaws.local import emulator

        endpoint = emulator.ensure_running()
        env = emulator.local_environment(endpoint)
        if opts.profile:
            env = {k: v for k, v in env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
        os.environ.update(env)
        if not out.json:
            out.info(f"[dim]using the local AWS emulator at {endpoint}[/dim]")
    check_loopback_endpoint(endpoint or os.environ.get("AWS_ENDPOINT_URL"))
    from kubeaws import api

    return api.connect(spec, profile=opts.profile, region=opts.region, endpoint_url=endpoint)


def check_loopback_endpoint(url: str | None) -> None:
    """Fail fast (instead of retrying for a minute) when a local endpoint has nothing listening."""
    if not url:
        return
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname not in {"127.0.0.1", "localhost", "::1"}:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    import socket

    try:
        socket.create_connection((parts.hostname, port), timeout=1).close()
    except OSError:
        raise KubeawsError(f"nothing answers at {url} (AWS_ENDPOINT_URL): start the emulator with "
                           f"`kubeaws local start` and use --local, or unset AWS_ENDPOINT_URL") from None


def confirm(out: Out, yes: bool, question: str, verb: str) -> None:
    """Go on only with --yes or an interactive "yes"; never act without one of them (exit 1)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise KubeawsError(f"refusing to {verb} without confirmation: not running on a terminal (with -f -, "
                           f"stdin carries the spec). Review the plan above, then re-run with --yes.")
    if not typer.confirm(question, default=False, err=out.json):
        raise KubeawsError(f"{verb} cancelled: nothing was changed.")


def describe(exc: BaseException) -> tuple[int, str, str] | None:
    """(exit code, message, hint) for an expected error, or None for an unexpected one."""
    if isinstance(exc, SpecError | BadInput):
        return EXIT_BAD_INPUT, str(exc), ""
    if isinstance(exc, KubeawsError):
        code = getattr(exc, "code", "")
        hint = ""
        if code in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}:
            hint = "check the network, the region name and any proxy settings (AWS_ENDPOINT_URL if set)"
        elif code in AUTH_CODES:
            hint = "the AWS credentials are invalid or expired: " + CREDENTIALS_HINT
        return EXIT_FAILED, str(exc), hint
    if "botocore" not in sys.modules:
        return None
    from botocore import exceptions as bce

    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return EXIT_FAILED, "no AWS credentials", CREDENTIALS_HINT
    if isinstance(exc, bce.ProfileNotFound):
        return EXIT_BAD_INPUT, str(exc), "list profiles with `aws configure list-profiles`"
    if isinstance(exc, bce.NoRegionError):
        return EXIT_BAD_INPUT, "no AWS region", "set spec.region in the spec or pass --region"
    if isinstance(exc, bce.TokenRetrievalError | bce.SSOError):
        return EXIT_FAILED, f"AWS SSO credentials: {exc}", "run `aws sso login` (with --profile if needed)"
    if isinstance(exc, bce.EndpointConnectionError | bce.ConnectTimeoutError):
        local = os.environ.get("AWS_ENDPOINT_URL")
        hint = (f"AWS_ENDPOINT_URL is {local}: is the emulator running? (`kubeaws local start`)" if local
                else "check the network, the region name, and any proxy settings")
        return EXIT_FAILED, f"cannot reach AWS: {exc}", hint
    if isinstance(exc, bce.ClientError):
        err: Any = exc.response.get("Error", {})
        code = str(err.get("Code", "Error"))
        op = getattr(exc, "operation_name", "") or "AWS call"
        hint = ""
        if code in AUTH_CODES:
            hint = "the AWS credentials are invalid or expired: " + CREDENTIALS_HINT
        elif code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            hint = "the AWS identity in use lacks this permission (see `aws sts get-caller-identity`)"
        return EXIT_FAILED, f"{op}: {code}: {err.get('Message', '')}".rstrip(": "), hint
    if isinstance(exc, bce.BotoCoreError):
        return EXIT_FAILED, f"AWS SDK: {exc}", ""
    return None


def run(out: Out, body: Callable[[], int | None]) -> None:
    """Run a command body; map expected errors to a message and an exit code (always via typer.Exit)."""
    try:
        code = body() or EXIT_OK
    except (typer.Exit, typer.Abort, BrokenPipeError):
        raise
    except KeyboardInterrupt:
        out.error("interrupted", hint="running the same command again finishes or resumes the job")
        raise typer.Exit(130) from None
    except Exception as exc:
        if os.environ.get("KUBEAWS_DEBUG"):
            raise
        described = describe(exc)
        if described is None:
            out.error(f"internal error: {type(exc).__name__}: {exc}",
                      hint="this is a kubeaws bug; re-run with KUBEAWS_DEBUG=1 for the traceback and report it",
                      kind="InternalError")
            raise typer.Exit(EXIT_FAILED) from None
        code, message, hint = described
        out.error(message, hint=hint, kind=type(exc).__name__)
        raise typer.Exit(code) from None
    raise typer.Exit(code)
