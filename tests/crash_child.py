"""The child process of tests/test_faults.py's crash test:

    python -m tests.crash_child <endpoint> <cluster> <k>

applies the HA-shaped spec (`ha_spec`) of cluster <cluster> against the moto server at <endpoint> with one
worker (the executor then runs one change at a time in the graph's order: the same AWS calls in the same
order on every run), and SIGKILLs itself right after the k-th mutating AWS call has been answered: AWS has
done it, the process never learns it, nothing of it runs any more (no `finally`, no atexit, no flush). With
k = 0 it applies to the end and prints {"ok": ..., "operations": [<every mutating call, in order>]} as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from kubeaws import api
from kubeaws.aws.session import is_read_operation
from kubeaws.spec.models import ClusterSpec
from tests.conftest import make_ctx
from tests.helpers import make_spec


def ha_spec(cluster: str) -> ClusterSpec:
    """The HA shape: NLB + target group + listener, IAM, state bucket and objects, 3 etcd volumes, ASGs, a NAT
    gateway and an EIP per AZ, a bastion with an EIP."""
    return make_spec(name=cluster, controlPlane={"count": 3}, access={"bastion": {"elasticIP": True}},
                     network={"natGateway": "perAZ", "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]})


class KillAfter:
    """`after-call` handler (every answer, success or error): counts mutating calls; the k-th kills the process."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.n = 0
        self.operations: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, model: Any, **_: Any) -> None:
        if is_read_operation(model.name):
            return
        with self.lock:
            self.n += 1
            self.operations.append(model.name)
            if self.n == self.k:
                sys.stderr.write(f"killed after mutating call {self.n}: {model.name}\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    endpoint, cluster, k = argv[0], argv[1], int(argv[2])
    ctx = make_ctx(endpoint, cluster)
    killer = KillAfter(k)
    ctx.add_hook("after-call", killer)
    result = api.apply(ha_spec(cluster), ctx, max_workers=1)
    print(json.dumps({"ok": result.ok, "operations": killer.operations,
                      "failed": [(e.key, e.error) for e in result.failed + result.skipped]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
