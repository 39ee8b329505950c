"""The tests' moto server: the emulator `kubeaws --local` runs (kubeaws.local.moto_server, every fix of it)
with two costs of moto's that only the tests pay, hundreds of times a run, taken out:

    python -m tests.moto_server -H 127.0.0.1 -p PORT

- POST /moto-api/reset (the `endpoint` fixture, before every test on AWS) rebuilt every backend the last test
  used (IAM's six partitions with their 1,582 AWS managed policies each, EC2 with its AMI catalogue, Auto
  Scaling...) and then dropped them all: the next request builds new ones anyway. Here it drops them without
  rebuilding them first (a backend with a reset of its own, S3's, still runs it: it cleans up more than the
  backend). In server mode nothing keeps a backend between requests (moto's responses and
  kubeaws' fronts look theirs up per request), so what the next test sees is the same: backends built anew.
- moto resolves the account of every request through the IAM backends of all six partitions, so the first
  request after a reset built all six with their managed policies (about 1 s on the 2-core machine) though
  the tests use one or two partitions. The AWS managed policies of a partition's IAM backend are built on
  its first use instead, the same objects as moto's.

Started by tests/conftest.py's `moto_server` fixture.
"""

from __future__ import annotations

import sys
from typing import Any

from kubeaws.local import moto_server

_UNBUILT = object()


def reset_without_rebuilding() -> None:
    """BackendDict.reset as moto's, less the rebuild of each backend it is about to drop. A backend whose class
    has a reset of its own (S3's closes its objects' temporary files and forgets which account holds each
    bucket name, a map shared by all S3 backends) still runs it."""
    from moto.core.base_backend import BackendDict, BaseBackend, backend_lock

    def reset(cls: Any) -> None:
        with backend_lock:
            for backends in cls._instances:
                for by_region in backends.values():
                    for backend in by_region.values():
                        if type(backend).reset is not BaseBackend.reset:
                            backend.reset()
                backends.clear()
            cls._instances.clear()

    setattr(BackendDict, "reset", classmethod(reset))  # noqa: B010


class _ManagedPolicies:
    """An IAMBackend attribute (`aws_managed_policies` or `managed_policies`) whose AWS managed policies are
    built on first read, by moto's own code."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, backend: Any, owner: Any = None) -> Any:
        if backend is None:
            return self
        state = backend.__dict__
        if state.get("aws_managed_policies", _UNBUILT) is _UNBUILT:
            built = _BUILD_AWS_POLICIES(backend)
            state["aws_managed_policies"] = built
            if state.get("managed_policies", _UNBUILT) is _UNBUILT:
                state["managed_policies"] = {p.arn: p for p in built}
        return state[self.name]

    def __set__(self, backend: Any, value: Any) -> None:
        backend.__dict__[self.name] = value


_BUILD_AWS_POLICIES: Any = None


def iam_policies_on_first_use() -> None:
    """IAMBackend builds its AWS managed policies (`aws_managed_policies`, and `managed_policies` which starts
    as them) on their first read instead of in __init__."""
    global _BUILD_AWS_POLICIES
    from moto.iam.models import IAMBackend

    _BUILD_AWS_POLICIES = IAMBackend._init_aws_policies
    setattr(IAMBackend, "_init_aws_policies", lambda self: _UNBUILT)  # noqa: B010 (typed as moto's, not ours)
    setattr(IAMBackend, "_init_managed_policies", lambda self: _UNBUILT)  # noqa: B010
    for name in ("aws_managed_policies", "managed_policies"):
        setattr(IAMBackend, name, _ManagedPolicies(name))

if __name__ == "__main__":
    reset_without_rebuilding()
    iam_policies_on_first_use()
    moto_server.main(sys.argv[1:])
