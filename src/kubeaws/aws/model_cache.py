"""A persistent cache of botocore's service models, so that a cold `kubeaws plan` does not spend ~0.15 s
decompressing and parsing the same JSON on every run (EC2's model alone is 3 MB, mostly documentation).

botocore reads its data files (`service-2.json.gz`, `endpoint-rule-set-1.json.gz`, ...) through a file
loader; `CachingFileLoader` is a drop-in one that keeps a copy of each file it reads, once parsed, as plain
JSON in `cache_dir()`: service models with their documentation strings emptied (only botocore's docstrings
read them). `CachingLoader` also keeps the list of services that botocore otherwise finds by listing its
~400 data directories on every run. A file's entry is keyed by the source's path, size and modification
time, so a botocore upgrade, a model under `AWS_DATA_PATH` or an edited file is read afresh; the service
list is keyed by botocore's version and the modification times of the data directories. Any problem with
the cache (read-only home, corrupt entry, full disk) falls back to botocore's own loading: the cache only
ever makes things faster.

The directory is `kubeaws.cache.cache_dir("botocore")` (default `~/.cache/kubeaws/botocore`;
`KUBEAWS_CACHE_DIR=off` turns the cache off). Installed on every session by `kubeaws.aws.session`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import botocore
from botocore.loaders import JSONFileLoader, Loader

from kubeaws.cache import cache_dir, ensure

#: botocore's extensions for its data files, in the order it tries them.
EXTENSIONS = (".json", ".json.gz")
#: Bump when the shape of what is cached changes.
FORMAT = "2"


def strip_documentation(node: Any) -> Any:
    """A copy of a service model with its documentation strings emptied (the keys stay: parts of botocore
    index them; a shape member named `documentation` is a dict and stays as it is)."""
    if isinstance(node, dict):
        return {k: "" if k in ("documentation", "documentationUrl") and isinstance(v, str) else strip_documentation(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [strip_documentation(v) for v in node]
    return node


class CachingFileLoader(JSONFileLoader):  # type: ignore[misc]  # botocore has no type hints
    """botocore's JSON file loader, reading a parsed copy from `directory` when the source is unchanged."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load_file(self, file_path: str) -> Any:
        for ext in EXTENSIONS:
            source = file_path + ext
            try:
                st = os.stat(source)
            except OSError:
                continue
            key = hashlib.sha256(f"{FORMAT}|{source}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
            entry = self.directory / f"{Path(file_path).name}-{key}.json"
            cached = self.read(entry)
            if cached is not None:
                return cached
            data = super().load_file(file_path)
            if data is not None:
                if Path(file_path).name == "service-2":
                    data = strip_documentation(data)
                self.write(entry, data)
            return data
        return None

    @staticmethod
    def read(entry: Path) -> Any:
        try:
            return json.loads(entry.read_bytes())
        except (OSError, ValueError):
            return None

    def write(self, entry: Path, data: Any) -> None:
        if not ensure(self.directory):
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, separators=(",", ":"))
                os.replace(tmp, entry)  # atomic: concurrent runs never read half a file
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except (OSError, TypeError, ValueError):
            pass  # no cache this time; botocore's data was loaded anyway


class CachingLoader(Loader):  # type: ignore[misc]  # botocore has no type hints
    """botocore's Loader with its data files read through `CachingFileLoader` and the service lists kept."""

    def __init__(self, directory: Path, extra_search_paths: list[str] | None = None) -> None:
        self.cache = CachingFileLoader(directory)
        super().__init__(extra_search_paths=extra_search_paths, file_loader=self.cache)
        self._services: dict[str, list[str]] = {}

    def list_available_services(self, type_name: str) -> list[str]:
        if type_name in self._services:
            return self._services[type_name]
        stamps = []
        for path in self.search_paths:
            try:
                stamps.append(f"{path}:{os.stat(path).st_mtime_ns}")
            except OSError:
                continue
        key = hashlib.sha256("|".join([FORMAT, botocore.__version__, type_name, *stamps]).encode()).hexdigest()[:32]
        entry = self.cache.directory / f"services-{key}.json"
        found = self.cache.read(entry)
        if not isinstance(found, list):
            found = list(super().list_available_services(type_name))
            self.cache.write(entry, found)
        services = [str(name) for name in found]
        self._services[type_name] = services
        return services


def install(session: Any) -> None:
    """Make `session` (a botocore Session) load its data through the cache, honouring AWS_DATA_PATH the way
    botocore's `create_loader` does."""
    directory = cache_dir("botocore")
    if directory is None:
        return
    data_path = session.get_config_variable("data_path")
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else None
    session.register_component("data_loader", CachingLoader(directory, extra))
