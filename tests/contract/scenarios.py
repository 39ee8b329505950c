"""Every registered resource kind's contract scenario, or the reason it has none.

`SCENARIOS` gathers the family modules' scenarios by kind; `EXEMPT` names the kinds that cannot be exercised
on the moto server, with the reason (tests/test_kinds_contract.py fails when a registered kind is in neither,
or when EXEMPT names a kind that no longer exists). Used by tests/test_kinds_contract.py.
"""

from __future__ import annotations

from tests.contract.compute import COMPUTE
from tests.contract.eks import EKS
from tests.contract.harness import Scenario
from tests.contract.identity import IDENTITY
from tests.contract.network import NETWORK

SCENARIOS: dict[str, Scenario] = {s.kind: s for s in [*NETWORK, *COMPUTE, *IDENTITY, *EKS]}

EXEMPT: dict[str, str] = {
    "KubernetesObject": "a Kubernetes object, not an AWS resource: on the local emulator (metadata-only EKS, no "
                        "API server) its create, update and delete make no call at all. Its contract (server-side "
                        "apply, labels as ownership, DELETE) is tested against a fake API server in "
                        "tests/test_kubernetes_object.py",
}
