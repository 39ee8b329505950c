"""The smoke workload of the real-AWS suite, one function per test: pod traffic between every pair of nodes
(control plane included, across AZs), cluster DNS, an EBS volume through the gp3 StorageClass, a LoadBalancer
Service reached from the runner, `kubectl top nodes`, and a cluster-autoscaler scale-up.

Each function asserts with messages that name the nodes, AZs and addresses involved; every wait is bounded.
"""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from tests.aws import manifests
from tests.aws.cluster import TRANSIENT, ClusterRun
from tests.aws.kube import (
    NodeInfo,
    PodInfo,
    classic_elb_name,
    cpu_millis,
    dns_script,
    parse_dns_output,
    parse_pods,
    parse_probe_output,
    probe_script,
)
from tests.aws.poll import NotYet, wait_for

NS = manifests.NAMESPACE


def agnhost_pods(run: ClusterRun) -> list[PodInfo]:
    """The DaemonSet's pods, one Ready pod with an address on every node (created on first use)."""
    if "workload" not in run.passed:
        run.kubectl_apply(manifests.namespace(), manifests.agnhost_daemonset(), manifests.headless_service())
        run.passed.add("workload")

    def check() -> list[PodInfo]:
        nodes = [n.name for n in run.nodes()]
        pods = parse_pods(run.kubectl_json("-n", NS, "get", "pods", "-l", f"app={manifests.APP}"))
        ready = {p.node: p for p in pods if p.ready and p.ip}
        missing = [n for n in nodes if n not in ready]
        if missing:
            states = {p.node: f"{p.name} {p.phase}{' ready' if p.ready else ''}" for p in pods}
            raise NotYet(f"no Ready agnhost pod on {missing} (pods: {states})")
        return [ready[n] for n in nodes]

    return wait_for("an agnhost pod Ready on every node", check, run.t(10), 15, retry_on=TRANSIENT)


def pod_network(run: ClusterRun) -> None:
    agnhost_pods(run)
    nodes = {n.name: n for n in run.nodes()}

    def where(pod: PodInfo) -> str:
        node = nodes.get(pod.node)
        role = "control-plane" if node and node.control_plane else "node"
        return f"{pod.name} on {pod.node} ({role}, {node.zone if node else '?'})"

    def check() -> tuple[list[PodInfo], dict[tuple[str, str], tuple[bool, str]]]:
        pods = agnhost_pods(run)  # afresh each round: a restarted pod has a new address
        by_ip = {p.ip: p for p in pods}
        results: dict[tuple[str, str], tuple[bool, str]] = {}
        for src in pods:
            targets = [p.ip for p in pods if p.ip != src.ip]
            out = run.kubectl("-n", NS, "exec", src.name, "--", "/bin/sh", "-c",
                              probe_script(targets, manifests.HTTP_PORT), timeout=60 + 15 * len(targets),
                              check=False, request_timeout=False)
            for ip, (ok, detail) in parse_probe_output(out.stdout, targets).items():
                if ok and detail != by_ip[ip].name:
                    ok, detail = False, f"answered as {detail!r}, expected {by_ip[ip].name}"
                results[(src.ip, ip)] = (ok, detail if ok or out.rc == 0 else f"{detail}; exec: {out.tail(3)}")
        failed = [f"  {where(by_ip[s])} -> {where(by_ip[t])}: {d}" for (s, t), (ok, d) in sorted(results.items())
                  if not ok]
        if failed:
            raise NotYet(f"{len(failed)} of {len(results)} pod-to-pod paths fail:\n" + "\n".join(failed))
        return pods, results

    pods, results = wait_for("pod-to-pod traffic between every pair of nodes", check, run.t(5), 20,
                             retry_on=TRANSIENT)
    node_of = {p.ip: nodes.get(p.node) for p in pods}
    zones = {(a.zone, b.zone) for (s, t) in results if (a := node_of.get(s)) and (b := node_of.get(t))}
    cross = sorted({f"{a}->{b}" for a, b in zones if a != b})
    on_control_plane = sum(1 for p in pods if p.node in nodes and nodes[p.node].control_plane)
    run.timings.fact("podNetwork", {"pods": len(pods), "paths": len(results), "crossAzPairs": cross,
                                    "controlPlanePods": on_control_plane})
    if len({n.zone for n in nodes.values()}) > 1:
        assert cross, f"the nodes span several AZs but no tested path crossed AZs: {sorted(zones)}"


def dns(run: ClusterRun) -> None:
    count = len(agnhost_pods(run))
    api_ip = str(run.kubectl_json("-n", "default", "get", "service", "kubernetes")["spec"]["clusterIP"])
    api_name = "kubernetes.default.svc.cluster.local"
    headless_name = f"{manifests.HEADLESS}.{NS}.svc.cluster.local"

    def check() -> None:
        pods = agnhost_pods(run)  # afresh each round: a restarted pod has a new address
        expected = {p.ip for p in pods}
        problems = []
        for pod in pods:
            out = run.kubectl("-n", NS, "exec", pod.name, "--", "/bin/sh", "-c", dns_script(api_name, headless_name),
                              timeout=90, check=False, request_timeout=False)
            answer = parse_dns_output(out.stdout)
            if api_ip not in answer.api:
                problems.append(f"  {pod.name} on {pod.node}: {api_name} -> {sorted(answer.api) or 'nothing'} "
                                f"(expected {api_ip}) {out.tail(2) if out.rc else ''}")
            if set(answer.headless) != expected:
                problems.append(f"  {pod.name} on {pod.node}: {headless_name} -> {sorted(answer.headless)}, expected "
                                f"every agnhost pod {sorted(expected)}")
            if not answer.connect_ok:
                problems.append(f"  {pod.name} on {pod.node}: TCP to {api_name}:443 failed: {answer.connect_detail}")
        if problems:
            raise NotYet("cluster DNS problems:\n" + "\n".join(problems))

    wait_for("cluster DNS from every node", check, run.t(5), 20, retry_on=TRANSIENT)
    run.timings.fact("dns", {"pods": count, "apiServiceIp": api_ip})


def ebs_volume(run: ClusterRun) -> None:
    """Write a token through a PVC on the gp3 StorageClass, read it back from a NEW pod, then delete the claim
    and check that the EBS volume is gone."""
    token = secrets.token_hex(8)
    run.kubectl_apply(manifests.namespace(), manifests.claim())
    started = time.monotonic()
    run.kubectl_apply(manifests.volume_pod("e2e-writer", f"echo {token} > /data/token && sync && exec sleep 3600"))
    run.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/e2e-writer", f"--timeout={int(run.t(8))}s",
                timeout=run.t(9), request_timeout=False)
    provisioned = time.monotonic() - started
    written = run.kubectl("-n", NS, "exec", "e2e-writer", "--", "cat", "/data/token", request_timeout=False).stdout
    assert written.strip() == token, f"the writer pod reads {written.strip()!r} back, expected {token}"
    claim = run.kubectl_json("-n", NS, "get", "pvc", manifests.CLAIM)
    pv_name = str(claim["spec"]["volumeName"])
    volume_id = str(run.kubectl_json("get", "pv", pv_name)["spec"]["csi"]["volumeHandle"])
    run.kubectl("-n", NS, "delete", "pod", "e2e-writer", "--wait=true", f"--timeout={int(run.t(5))}s",
                timeout=run.t(6), request_timeout=False)
    started = time.monotonic()
    run.kubectl_apply(manifests.volume_pod("e2e-reader", "exec sleep 3600"))
    run.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/e2e-reader", f"--timeout={int(run.t(8))}s",
                timeout=run.t(9), request_timeout=False)
    reattached = time.monotonic() - started
    read = run.kubectl("-n", NS, "exec", "e2e-reader", "--", "cat", "/data/token", request_timeout=False).stdout
    assert read.strip() == token, f"a new pod on the same claim reads {read.strip()!r}, expected {token}"
    tags = {t["Key"]: t["Value"] for t in run.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
            .get("Tags") or []}
    run.kubectl("-n", NS, "delete", "pod", "e2e-reader", "--wait=true", f"--timeout={int(run.t(5))}s",
                timeout=run.t(6), request_timeout=False)
    run.kubectl("-n", NS, "delete", "pvc", manifests.CLAIM, "--wait=true", f"--timeout={int(run.t(5))}s",
                timeout=run.t(6), request_timeout=False)

    def volume_gone() -> None:
        from botocore.exceptions import ClientError

        try:
            volumes = run.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"]
        except ClientError as exc:
            if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
                return
            raise
        if volumes and volumes[0]["State"] not in ("deleting", "deleted"):
            raise NotYet(f"EBS volume {volume_id} of {pv_name} is {volumes[0]['State']}")

    wait_for(f"EBS volume {volume_id} to be deleted with its claim", volume_gone, run.t(5), 15)
    run.timings.fact("ebsVolume", {"volume": volume_id, "provisionAndAttachSeconds": round(provisioned, 1),
                                   "reattachSeconds": round(reattached, 1), "volumeTags": tags})


def http_get(url: str, timeout: float = 10.0) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return str(answer.read(256).decode(errors="replace")).strip()
    except (urllib.error.URLError, OSError) as exc:
        raise NotYet(f"GET {url}: {exc}") from None


def load_balancer(run: ClusterRun) -> None:
    """A `type: LoadBalancer` Service (cloud-provider-aws) answers the runner; deleting it removes the load
    balancer."""
    pods = agnhost_pods(run)
    run.kubectl_apply(manifests.load_balancer_service(run.ctx.admin_cidr))
    started = time.monotonic()

    def hostname() -> str:
        service = run.kubectl_json("-n", NS, "get", "service", manifests.LOAD_BALANCER)
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress or not ingress[0].get("hostname"):
            events = run.kubectl("-n", NS, "get", "events", f"--field-selector=involvedObject.name="
                                 f"{manifests.LOAD_BALANCER}", check=False).stdout
            raise NotYet(f"no load balancer yet; events:\n{events[-1500:]}")
        return str(ingress[0]["hostname"])

    host = wait_for("the Service's load balancer", hostname, run.t(8), 15, retry_on=TRANSIENT)
    provisioned = time.monotonic() - started
    answer = wait_for(f"an HTTP answer from http://{host}/hostname", lambda: http_get(f"http://{host}/hostname"),
                      run.t(15), 15)
    reachable = time.monotonic() - started
    # The load balancer sends to the workers' NodePort; kube-proxy may forward to the pod of any node.
    backends = {p.name for p in pods}
    assert answer in backends, f"the load balancer answered {answer!r}, expected one of the agnhost pods {backends}"
    run.kubectl("-n", NS, "delete", "service", manifests.LOAD_BALANCER, "--wait=true",
                f"--timeout={int(run.t(10))}s", timeout=run.t(11), request_timeout=False)
    name = classic_elb_name(host)

    def gone() -> None:
        from botocore.exceptions import ClientError

        try:
            found = run.client("elb").describe_load_balancers(LoadBalancerNames=[name])["LoadBalancerDescriptions"]
        except ClientError as exc:
            if "LoadBalancerNotFound" in str(exc.response.get("Error", {}).get("Code", "")):
                return
            raise
        if found:
            raise NotYet(f"classic load balancer {name} still exists")

    wait_for(f"load balancer {name} to be deleted with its Service", gone, run.t(5), 15)
    run.timings.fact("loadBalancer", {"hostname": host, "provisionedSeconds": round(provisioned, 1),
                                      "reachableSeconds": round(reachable, 1)})


def metrics(run: ClusterRun) -> None:
    def check() -> str:
        count = len(run.nodes())
        out = run.kubectl("top", "nodes", "--no-headers", check=False)
        lines = [line for line in out.stdout.splitlines() if line.strip()]
        if out.rc != 0 or len(lines) < count:
            raise NotYet(f"kubectl top nodes: exit {out.rc}, {len(lines)}/{count} nodes; {out.tail(3)}")
        return out.stdout

    table = wait_for("kubectl top nodes to answer for every node", check, run.t(10), 20, retry_on=TRANSIENT)
    (run.dir / "top-nodes.txt").write_text(table)


def autoscaler(run: ClusterRun) -> None:
    """Pods whose CPU requests do not fit the node group make the cluster-autoscaler raise the group's desired
    capacity; the new node joins and the pods run."""
    selector = {"kubeaws.io/resource": f"AutoScalingGroup/ng-{run.group}"}
    group = run.auto_scaling_group(selector)
    asg_name = str(group["AutoScalingGroupName"])
    before, maximum = int(group["DesiredCapacity"]), int(group["MaxSize"])
    assert before < maximum, f"{asg_name} is already at its maximum ({maximum}): nothing to scale up"
    members = [n for n in run.nodes() if n.group == run.group and n.ready]
    assert members, f"no Ready node labelled kubeaws.io/node-group={run.group}"
    request = int(min(cpu_millis(n.allocatable_cpu) for n in members) * 0.6)
    replicas = len(members) + 1
    run.kubectl_apply(manifests.namespace(),
                      manifests.scale_up_deployment(replicas, request, run.group))
    started = time.monotonic()

    def scaled() -> int:
        desired = int(run.auto_scaling_group(selector)["DesiredCapacity"])
        if desired <= before:
            raise NotYet(f"{asg_name} desired capacity still {desired}")
        return desired

    after = wait_for(f"the cluster-autoscaler to grow {asg_name}", scaled, run.t(10), 15, retry_on=TRANSIENT)
    decided = time.monotonic() - started
    known = {n.name for n in members}

    def running() -> list[NodeInfo]:
        deployment = run.kubectl_json("-n", NS, "get", "deployment", manifests.SCALE_UP)
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        new = [n for n in run.nodes() if n.group == run.group and n.name not in known]
        if ready < replicas or not new or not all(n.ready for n in new):
            raise NotYet(f"{ready}/{replicas} scale-up pods ready; new nodes: "
                         f"{[(n.name, 'Ready' if n.ready else 'not Ready') for n in new]}")
        return new

    new_nodes = wait_for("the new node to be Ready and the pods to run", running, run.t(15), 20, retry_on=TRANSIENT)
    finished = time.monotonic() - started
    run.kubectl("-n", NS, "delete", "deployment", manifests.SCALE_UP, "--wait=true", f"--timeout={int(run.t(5))}s",
                timeout=run.t(6), request_timeout=False)
    facts: dict[str, Any] = {"group": asg_name, "desiredBefore": before, "desiredAfter": after,
                             "podCpuRequestMillis": request, "replicas": replicas,
                             "scaleDecisionSeconds": round(decided, 1), "podsRunningSeconds": round(finished, 1),
                             "newNodes": [n.name for n in new_nodes]}
    run.timings.fact("autoscaler", facts)
