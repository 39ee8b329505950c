"""The addon descriptors, one module per addon (kubeaws.addons.descriptor says what a descriptor holds).

`DESCRIPTORS` is the registry every layer reads, in apply order (`Addon.order`, then name: the CNIs first).
Every module of this package is read for its `Addon` values: adding an addon is its module here and its
template under addons/templates (docs/addons.md), plus the spec field that turns it on.
"""

from __future__ import annotations

import importlib
import pkgutil

from kubeaws.addons.descriptor import Addon


def _discover() -> tuple[Addon, ...]:
    found: dict[str, Addon] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Addon):
                if found.get(value.name, value) is not value:
                    raise ValueError(f"two addon descriptors are named {value.name}")
                found[value.name] = value
    return tuple(sorted(found.values(), key=lambda a: (a.order, a.name)))


DESCRIPTORS: tuple[Addon, ...] = _discover()
