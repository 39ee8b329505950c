"""The scheduler of apply and delete: runs tasks on a dependency graph, each as soon as what it waits for
succeeded, on one bounded thread pool for the whole run, with the AWS context's shared clients.

Called by engine.apply (the changes of a plan on the model's graph; deletions on engine.delete_order's graph).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from kubeaws.aws.session import AwsContext


def run_dag(order: list[str], deps: Mapping[str, set[str]], run: Callable[[str], None],
             skip: Callable[[str, set[str]], None], ctx: AwsContext, max_workers: int) -> set[str]:
    """Run `run(key)` for every key of `order` (a topological order: dependencies first) as soon as every key
    in `deps[key]` succeeded; `skip(key, failed)` instead for one that waits for a failed or skipped key.
    Returns the keys that failed or were skipped. One pool for the whole run; every task runs with the
    context's shared clients (`AwsContext.sharing`: one client per service for the whole command, none built
    per thread). With `max_workers` 1, one key at a time on the calling thread, in `order`: the same AWS calls
    in the same order on every run (what a fault-injection test that kills the process at its k-th call needs).
    """
    position = {key: n for n, key in enumerate(order)}
    waiting = {key: {d for d in deps.get(key, ()) if d in position} for key in order}
    bad: set[str] = set()

    def task(key: str) -> None:
        with ctx.sharing():
            run(key)

    if max_workers <= 1:
        for key in order:
            if waiting[key] & bad:
                bad.add(key)
                skip(key, waiting[key] & bad)
                continue
            try:
                task(key)
            except Exception:
                bad.add(key)
        return bad
    dependants: dict[str, list[str]] = {key: [] for key in order}
    for key, before in waiting.items():
        for d in before:
            dependants[d].append(key)
    left = {key: len(before) for key, before in waiting.items()}
    ready = [position[key] for key in order if not left[key]]
    heapq.heapify(ready)
    running: dict[Future[None], str] = {}

    def settle(key: str, ok: bool) -> None:
        """`key` is finished: release what waited for it, or skip it (and what waits for that) on failure."""
        stack = [key]
        if ok:
            for d in dependants[key]:
                left[d] -= 1
                if not left[d] and d not in bad:
                    heapq.heappush(ready, position[d])
            return
        bad.add(key)
        while stack:
            for d in dependants[stack.pop()]:
                if d not in bad:
                    bad.add(d)
                    skip(d, waiting[d] & bad)
                    stack.append(d)

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kubeaws") as pool:
        while ready or running:
            while ready:
                key = order[heapq.heappop(ready)]
                running[pool.submit(task, key)] = key
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                key = running.pop(fut)
                settle(key, fut.exception() is None)
    return bad
