"""The AWS context every AWS call goes through: one boto3 client per thread and service, retries, AWS's
request-rate buckets kept client-side and a cap on requests in flight (aws/ratelimit.py), call
accounting (for the idempotence tests and the benchmark), hooks (for fault-injection tests) and the call
trace of `kubeaws -v` (`trace_calls`: one line per AWS request on stderr, with its outcome and duration).

Created by the public API (`kubeaws.api`) from the CLI's options; passed to the engine and to every
resource kind.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from kubeaws.aws.errors import already_done, collapse_web_page, pascal, repeatable
from kubeaws.aws.ratelimit import RateLimiter
from kubeaws.aws.retry import RetryPolicy, call_with_retry

READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup", "Search", "Select")

Hook = tuple[str, Callable[..., Any]]


class KubeAccess(Protocol):
    """The cluster's Kubernetes API for one command (kubeaws.reach.KubeReach; tests give a fake API server's):
    what the `KubernetesObject` kind reads and applies through. `possible`: an API can be behind this
    endpoint at all; `client(wait=...)`: a kubeaws.kube_client.KubeClient, or None with the reason in
    `problem`."""

    possible: bool
    problem: str | None

    def client(self, *, wait: bool) -> Any: ...


def is_read_operation(operation: str) -> bool:
    """Describe*/List*/Get*/Head* calls change nothing; everything else counts as mutating."""
    return operation.startswith(READ_PREFIXES)


@dataclass
class CallLog:
    """Counts every AWS request kubeaws sends, per (service, operation). Thread-safe."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, service: str, operation: str) -> None:
        with self._lock:
            self.counts[(service, operation)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self.counts)

    def mutating(self) -> int:
        return sum(n for (_, op), n in self.snapshot().items() if not is_read_operation(op))

    def reads(self) -> int:
        return sum(n for (_, op), n in self.snapshot().items() if is_read_operation(op))

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


class CallTrace:
    """Writes one line per AWS request to a stream (`kubeaws -v`): `aws <service>.<Operation> <HTTP status>
    [<error code>] <ms> ms`, or the exception's name when no answer came. Nothing from the request or the
    answer is written but those (no parameters, no headers, no bodies: no secret can leak). Registered on
    a botocore session: before-call starts the clock in the request's context, after-call and
    after-call-error write the line. Thread-safe (one write per line)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def register(self, events: Any) -> None:
        events.register("before-call", self._before)
        events.register("after-call", self._after)
        events.register("after-call-error", self._failed)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["kubeaws_trace"] = (f"{model.service_model.service_name}.{model.name}", time.perf_counter())

    @staticmethod
    def _call(context: dict[str, Any]) -> str:
        name, start = context.get("kubeaws_trace", ("?", None))
        ms = f"{(time.perf_counter() - start) * 1000:.0f} ms" if start is not None else "? ms"
        return f"{name} {{}} {ms}"

    def _after(self, http_response: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        status = str(getattr(http_response, "status_code", "?"))
        if isinstance(parsed, dict) and (parsed.get("Error") or {}).get("Code"):
            status += f" {parsed['Error']['Code']}"
        self._write("aws " + self._call(context).format(status))

    def _failed(self, exception: BaseException, context: dict[str, Any], **_: Any) -> None:
        self._write("aws " + self._call(context).format(type(exception).__name__))

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


#: The trace every new AwsContext registers on its session (set by `trace_calls`), or None.
_TRACE: CallTrace | None = None


def trace_calls(stream: TextIO | None) -> None:
    """Trace every AWS request of the AwsContexts created from now on to `stream` (sys.stderr at the time of
    writing when `sys.stderr` is given); None stops tracing new contexts. Called by the CLI for `-v`."""
    global _TRACE
    _TRACE = None if stream is None else CallTrace(None if stream is sys.stderr else stream)


def register_trace(events: Any) -> None:
    """Register the active trace (if any) on a botocore session's or client's event system (for the few
    sessions made outside an AwsContext, e.g. `kubeaws token`)."""
    if _TRACE is not None:
        _TRACE.register(events)


@dataclass
class AwsSettings:
    """Where and as whom to call AWS. `endpoint_url` None means the SDK's normal resolution (which already
    honours AWS_ENDPOINT_URL)."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class EndpointCapabilities:
    """What an endpoint serves where a local emulator (moto behind kubeaws.local) differs from AWS, as named
    booleans: AWS has them all (`AWS`), the local emulator its own (`EMULATOR`). Code that behaves differently
    on the emulator asks `ctx.capabilities.<name>`, never whether it talks to an emulator; the one detection
    is `AwsContext.is_emulator`."""

    #: AWS throttles requests: the client keeps AWS's rate buckets (aws/ratelimit.py).
    throttles: bool = True
    #: Instances boot: user data runs, nodes register, a kubeadm cluster's Kubernetes API answers.
    boots_instances: bool = True
    #: An EKS cluster's endpoint serves the Kubernetes API (`KubernetesObject`, `Kind.cloud_only` kinds).
    kubernetes_api_behind_eks: bool = True
    #: Instances an Auto Scaling group launches get their launch template's metadata options and volumes.
    applies_launch_template_metadata: bool = True
    #: DeleteLaunchTemplateVersions is served (a rollout prunes old template versions).
    deletes_launch_template_versions: bool = True
    #: The public SSM parameters naming AMIs exist (else the plan puts a stand-in image in their place).
    public_ami_parameters: bool = True
    #: EKS list calls answer as AWS: ResourceNotFound for an unknown cluster, every list operation served.
    complete_eks_lists: bool = True


#: AWS itself.
AWS = EndpointCapabilities()
#: The local emulator (docs/testing.md, "moto differences"): nothing boots, EKS is metadata only.
EMULATOR = EndpointCapabilities(throttles=False, boots_instances=False, kubernetes_api_behind_eks=False,
                                applies_launch_template_metadata=False, deletes_launch_template_versions=False,
                                public_ami_parameters=False, complete_eks_lists=False)


class AwsContext:
    """Per-operation AWS access for one cluster. Safe to share between the executor's threads."""

    def __init__(self, settings: AwsSettings, cluster: str, policy: RetryPolicy | None = None,
                 hooks: list[Hook] | None = None, call_log: CallLog | None = None,
                 session_of: AwsContext | None = None, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.cluster = cluster
        self.region = settings.region
        self.policy = policy or RetryPolicy()
        self.calls = call_log or CallLog()
        self.run_id = uuid.uuid4().hex[:12]
        #: `kubeaws apply --force-eks-update`: managed node groups' version updates are forced (EKS replaces
        #: the nodes even when a PodDisruptionBudget refuses an eviction).
        self.force_eks_update = False
        self._hooks: list[Hook] = list(hooks or [])
        # botocore directly: importing boto3 would add ~60 ms to every command for nothing we use; and only
        # here, not when this module is imported: `kubeaws render` builds the model without an AWS SDK import.
        from botocore.config import Config

        self._session: Any
        self._session_lock: threading.Lock
        self.limiter: RateLimiter
        if session_of is not None:  # `in_region`: one botocore session (and its lock, and its limiter) for both
            self._session, self._session_lock = session_of._session, session_of._session_lock
            self.limiter = session_of.limiter
        else:
            import botocore.session

            from kubeaws.aws import model_cache

            self._session_lock = threading.Lock()
            self._session = botocore.session.Session(profile=settings.profile)
            model_cache.install(self._session)  # parsed service models kept between runs (aws/model_cache.py)
            # AWS's request-rate buckets kept client-side (aws/ratelimit.py; keyed by region, so `in_region`
            # contexts share it); before the trace, so that -v times the request, not the wait for a token.
            # The local emulator throttles nothing: no rates there unless a limiter is given.
            self.limiter = limiter or (RateLimiter() if self.capabilities.throttles else RateLimiter.unlimited())
            self._session.register("before-call", self.limiter.before_call)
            register_trace(self._session)  # `kubeaws -v`: the session's events reach every client made from it
        self._local = threading.local()
        #: The cluster's Kubernetes API (set by kubeaws.api for plan and apply); None: the KubernetesObject kind
        #: reaches an EKS cluster's API by DescribeCluster, and a kubeadm cluster's not at all.
        self.kube: KubeAccess | None = None
        self._shared: dict[str, Any] = {}
        self._shared_lock = threading.Lock()
        # botocore's own retries are off: `call` retries with jitter and counts every attempt.
        self._config = Config(retries={"total_max_attempts": 1, "mode": "standard"},
                              connect_timeout=10, read_timeout=60, max_pool_connections=32)

    def in_region(self, region: str) -> AwsContext:
        """A context for `region` with the same identity, endpoint, policy, hooks and call log, sharing this
        one's botocore session: its service models are loaded once, so a command that reads many regions
        (`kubeaws get clusters --all-regions`) builds each region's clients in a fraction of the time."""
        return AwsContext(replace(self.settings, region=region), self.cluster, self.policy, list(self._hooks),
                          self.calls, session_of=self)

    @property
    def is_emulator(self) -> bool:
        """True when the endpoint is a local AWS emulator (loopback address), not AWS: the one detection,
        read through `capabilities`."""
        from urllib.parse import urlsplit

        host = urlsplit(self.settings.endpoint_url or "").hostname or ""
        return host in {"127.0.0.1", "localhost", "::1"} or host.endswith(".localhost")

    @property
    def capabilities(self) -> EndpointCapabilities:
        """What the endpoint serves (EndpointCapabilities): AWS's, or the local emulator's."""
        return EMULATOR if self.is_emulator else AWS

    # -- clients ---------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """The calling thread's client for `service`: created once per thread (session access locked), or
        the context's shared client inside `sharing()` (read-only observation, where building a client per
        pool thread would cost more than the calls themselves)."""
        if getattr(self._local, "sharing", False):
            return self._shared_client(service)
        cache: dict[str, Any] | None = getattr(self._local, "clients", None)
        if cache is None:
            cache = {}
            self._local.clients = cache
        if service not in cache:
            cache[service] = self._new_client(service)
        return cache[service]

    def _shared_client(self, service: str) -> Any:
        with self._shared_lock:
            if service not in self._shared:
                self._shared[service] = self._new_client(service)
            return self._shared[service]

    @contextmanager
    def sharing(self) -> Iterator[None]:
        """Within the block, this thread uses the shared clients (boto3 clients are thread-safe)."""
        previous = getattr(self._local, "sharing", False)
        self._local.sharing = True
        try:
            yield
        finally:
            self._local.sharing = previous

    def _new_client(self, service: str) -> Any:
        with self._session_lock:
            session: Any = self._session  # service names are dynamic here
            client = session.create_client(service, region_name=self.region,
                                           endpoint_url=self.settings.endpoint_url, config=self._config)
        client.meta.events.register("before-call", self._count)
        client.meta.events.register("after-call", collapse_web_page)  # no web page in an error message
        for event, handler in self._hooks:
            client.meta.events.register(event, handler)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls.record(model.service_model.service_name, model.name)

    def add_hook(self, event: str, handler: Callable[..., Any]) -> None:
        """Register a botocore event handler on every client (existing ones in this thread, future ones
        everywhere). Used by tests to inject faults."""
        self._hooks.append((event, handler))
        with self._shared_lock:
            shared = list(self._shared.values())
        for client in [*(getattr(self._local, "clients", None) or {}).values(), *shared]:
            client.meta.events.register(event, handler)

    # -- calls -----------------------------------------------------------------------------------
    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call `operation` (snake_case boto3 name) with retries (aws/retry.py `call_with_retry`).

        A read is retried on throttling, dropped connections, timeouts and 5xx. A mutation whose outcome is
        unknown (no answer once sent, a 5xx) is sent again only when that cannot duplicate anything (an
        idempotency token in `params`, or an operation `aws.errors.repeatable` lists); then a repeat that
        answers "already so" (a duplicate rule, a missing resource on delete: `aws.errors.already_done`)
        counts as success and returns {}. Any other such mutation raises `aws.errors.AmbiguousOutcome`,
        resolved by the caller by looking before creating again (`resources.base.create_or_adopt`)."""
        method = getattr(self.client(service), operation)
        name = pascal(operation)
        mutating = not is_read_operation(name)

        def done(exc: BaseException) -> dict[str, Any] | None:
            return {} if already_done(exc, name) else None

        def send() -> dict[str, Any]:
            with self.limiter.slot():  # at most `--parallelism` requests in flight
                answer: dict[str, Any] = method(**params)
                return answer

        result: dict[str, Any] = call_with_retry(send, operation, self.policy,
                                                 mutating=mutating, repeatable=repeatable(name, params),
                                                 already=done)
        return result

    def paginate(self, service: str, operation: str, result_key: str, **params: Any) -> list[Any]:
        """Every item of a paginated describe/list, each page fetched with `call` (so retried), each asking
        for the API's largest page (aws/pages.py) and following its token to the last page."""
        from kubeaws.aws.pages import with_page_size

        client = self.client(service)
        paginator = client.get_paginator(operation)
        model = paginator._pagination_cfg  # input/output token names from botocore's pagination config
        in_token = model["input_token"]
        out_token = model["output_token"]
        in_token = in_token[0] if isinstance(in_token, list) else in_token
        out_token = out_token[0] if isinstance(out_token, list) else out_token
        params = with_page_size(service, operation, model.get("limit_key"), params)
        items: list[Any] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            page_params = dict(params)
            if token:
                page_params[in_token] = token
            page = self.call(service, operation, **page_params)
            items.extend(page.get(result_key, []) or [])
            token = page.get(out_token)
            # Guard against emulators that keep returning the same token.
            if not token or token in seen:
                return items
            seen.add(token)

    def client_token(self, key: str) -> str:
        """An idempotency token stable for this run and resource: retries of one create in this run are
        deduplicated by AWS; a later run (after a delete) gets a fresh token."""
        return f"{self.run_id}-{uuid.uuid5(uuid.NAMESPACE_URL, self.cluster + '/' + key).hex}"[:64]

    def account_id(self) -> str:
        cached: str | None = getattr(self, "_account", None)
        if cached is None:
            cached = str(self.call("sts", "get_caller_identity")["Account"])
            self._account = cached
        return cached

    @contextmanager
    def counting(self) -> Iterator[CallLog]:
        """Count the calls made inside the block, separately from the context's running totals."""
        log = CallLog()
        previous = self.calls
        self.calls = log
        try:
            yield log
        finally:
            self.calls = previous
            for key, n in log.snapshot().items():
                previous.counts[key] += n


def settings_from_env(region: str, profile: str | None = None, endpoint_url: str | None = None) -> AwsSettings:
    """AwsSettings honouring AWS_ENDPOINT_URL when no endpoint is given explicitly."""
    return AwsSettings(region=region, profile=profile,
                       endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None)
