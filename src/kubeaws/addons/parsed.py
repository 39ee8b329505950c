"""Rendered addon manifests as documents (dicts), parsed once: the vendored upstream files are megabytes of
YAML (Calico's CRDs alone ~1.7 MB), which the pure-Python YAML parser reads in seconds. A manifest text is
parsed with libyaml when PyYAML has it, and its documents are kept in memory and in the kubeaws cache
(`kubeaws.cache`, part `manifests`: JSON named by the text's sha256, which reads ~10x faster than YAML even
with libyaml). Callers get their own copy.

Called by kubeaws.addons.addon_documents (the model's addon objects: kubeaws.model.addon_objects).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from kubeaws.cache import cache_dir, ensure

_memory: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty documents of a multi-document YAML text, as new dicts."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    with _lock:
        found = _memory.get(digest)
    if found is None:
        found = _from_disk(digest)
        if found is None:
            found = [d for d in yaml.load_all(text, Loader=_LOADER) if d]
            _to_disk(digest, found)
        with _lock:
            _memory[digest] = found
    return [_copy(doc) for doc in found]


def _copy(value: Any) -> Any:
    """A copy of a JSON-shaped value (dicts, lists, scalars): copy.deepcopy's result, several times faster."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _path(digest: str) -> Path | None:
    directory = cache_dir("manifests")
    return None if directory is None else directory / f"{digest}.json"


def _from_disk(digest: str) -> list[dict[str, Any]] | None:
    path = _path(digest)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, list) else None


def _to_disk(digest: str, docs: list[dict[str, Any]]) -> None:
    """Written whole or not at all (a temporary file renamed), so a reader never sees half of one."""
    path = _path(digest)
    if path is None or not ensure(path.parent):
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(docs, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):  # a value JSON cannot hold (a YAML date): not cached
        with contextlib.suppress(OSError):
            os.unlink(tmp)
