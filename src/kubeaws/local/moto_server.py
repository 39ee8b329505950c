"""The local emulator's server process: moto's server, with fixes for the moto bugs that break a flow
kubeaws relies on, applied before it starts. Each fix makes moto behave as AWS does; none changes what
kubeaws sends.

- Launch-template versions made by CreateLaunchTemplateVersion keep their user data as plain text, and moto's
  Auto Scaling then fails (HTTP 500, an AssertionError inside moto) to launch any instance from such a
  version: every instance a rollout or a self-healing group launches after a template change. The version's
  user data is given to moto's launcher in the form it expects.
- A launch template's tags are read when it is created: CreateTags on it later (kubeaws' content-hash tag,
  rewritten by every update) never shows in DescribeLaunchTemplates, so a re-plan after a template change
  showed the change again. Its tags are read from the tag store each time, as AWS shows them. (From the template's
  own entry: moto's tag lookup scans every tag of the region, seconds for a describe of 300 templates.)
- A bucket policy is evaluated for every request as if it came from an unknown caller without request
  context: a Deny with a Condition (kubeaws' TLS-only and other-accounts statements) or for a given principal
  (the node role's limits) denies every request, so a bucket carrying kubeaws' real policy locked kubeaws
  out of it. Such statements are left out of the evaluation (AWS would not apply them to kubeaws' own calls:
  TLS, the account's identity); the policy is stored and read back exactly as put.

moto's backends are not thread-safe (its in-process mock warns of the same): two requests at once can meet a
dictionary changing size under an iteration and answer HTTP 500 (seen on a parallel CreateAutoScalingGroup).
kubeaws calls AWS from many threads, and AWS serves them all, so the server answers one request at a time (the
GIL kept moto on one core anyway).

moto's server app runs behind kubeaws.local.eks_front, which serves the EKS operations moto lacks (access entries,
add-ons, updates) in the same process and forwards everything else to moto, and kubeaws.local.ec2_front, which
pages the launch-template describes (moto answers 15 at most, with no NextToken).

Started by `kubeaws.local.emulator.launch` as `python -m kubeaws.local.moto_server -H 127.0.0.1 -p PORT`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from kubeaws.local.wsgi import App, collect


def patch() -> None:
    from moto.core.types import Base64EncodedString
    from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateVersion

    def user_data(self: Any) -> Any:
        value = self.data.get("UserData")
        return Base64EncodedString(value) if isinstance(value, str) else value

    LaunchTemplateVersion.user_data = property(user_data)  # type: ignore[method-assign,assignment]
    def template_tags(self: Any) -> list[dict[str, str]]:
        # The template's own entry of the tag store, in describe_tags' shape: moto's get_tags() scans every tag
        # of every resource with a regular expression, which made a 300-template describe take seconds.
        tags = self.ec2_backend.tags.get(self.id, {})
        return [{"resource_id": self.id, "key": k, "value": v, "resource_type": "launch-template"}
                for k, v in tags.items()]

    LaunchTemplate.tags = property(template_tags, lambda self, value: None)  # type: ignore[assignment]
    _judge_bucket_policies_moto_can()


def _judge_bucket_policies_moto_can() -> None:
    """moto's bucket-policy check sees only the statements it can evaluate (module docstring)."""
    import json

    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def judged(statement: Any) -> bool:
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            return True
        return not statement.get("Condition") and statement.get("Principal") in ("*", {"AWS": "*"})

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy)
        statements = document.get("Statement") or []
        kept = [st for st in (statements if isinstance(statements, list) else [statements]) if judged(st)]
        return IAMPolicy(json.dumps({**document, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def app() -> Any:
    """moto's server application (every service, dispatched by host or signature) behind the EKS and EC2 fronts."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from kubeaws.local.ec2_front import Ec2Front
    from kubeaws.local.eks_front import EksFront

    inner = DomainDispatcherApplication(create_backend_app)
    inner.debug = True  # type: ignore[attr-defined]  # as moto's own server: errors answered, not raised
    return one_at_a_time(EksFront(Ec2Front(inner)))


def one_at_a_time(app: App) -> App:
    """`app` answering one request at a time, its whole answer collected under the lock (module docstring)."""
    lock = threading.Lock()

    def serve(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            code, headers, body = collect(app, environ)
        start_response(f"{code} {_reason(code)}", headers)
        return [body]

    return serve


def _reason(code: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def main(argv: list[str]) -> None:
    """Serve on -H/-p as moto's server does (threaded, moto's request handler); SIGTERM/SIGINT end it."""
    parser = argparse.ArgumentParser(prog="python -m kubeaws.local.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs (e.g. S3 presigning) from it
    patch()
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: _exit())
    run_simple(args.host, args.port, app(), threaded=True, request_handler=MotoRequestHandler)


def _exit() -> None:
    """End at once: the state is in memory only, and a request thread must not hold the exit up."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
