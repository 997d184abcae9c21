"""The model repository on disk (``ROOT/NAME/VERSION/`` SavedModels, as ``dltk export``
writes them) and the versions loaded from it.

A version is loaded on first use and kept while its folder exists. A newer version found
while an older one is serving loads in the background, and the older one answers until
it is ready, as in TF Serving. A version that fails to load is logged once and skipped.
Folders are listed again at most once every ``rescan_s`` seconds.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from dltoolkit.serve.errors import RequestError

LOG = logging.getLogger("dltoolkit.serve")
SIGNATURE = "serving_default"
VERSION = re.compile(r"[0-9]{1,18}")  # ASCII digits only: int() takes other scripts' digits
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
FACTS = Path("assets.extra") / "dltoolkit.json"  # what dltk export records for a server


@dataclasses.dataclass
class Servable:
    """One loaded version of a model: its signature, input and output specs, and what the
    export recorded beside it (``facts``: class names, inputs whose missing numbers the
    model imputes)."""

    name: str
    version: int
    function: Any
    inputs: dict[str, Any]  # name -> tf.TensorSpec
    outputs: dict[str, Any]
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)
    loaded: Any = None  # the loaded SavedModel, kept alive with its variables
    batcher: Any = None  # set by the server: gathers concurrent requests into one call

    def imputes(self, input_name: str) -> bool | None:
        """Whether the model fills a missing number in this input (None: not recorded)."""
        imputed = self.facts.get("imputed_inputs")
        return None if imputed is None else input_name in imputed


def is_version(text: str) -> bool:
    """Whether ``text`` is a version number as TF Serving writes one (ASCII digits)."""
    return VERSION.fullmatch(text) is not None


class Repository:
    """The model repository on disk and the versions loaded from it."""

    def __init__(self, root: str | Path, rescan_s: float = 1.0, on_load: Any = None):
        self.root = Path(root)
        self.rescan_s = rescan_s
        self.on_load = on_load  # called with each Servable once it has loaded
        self._loaded: dict[tuple[str, int], Servable] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()  # guards the three below
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._pending: set[tuple[str, int]] = set()
        self._listed: dict[str, tuple[float, list[int]]] = {}

    def names(self) -> list[str]:
        """Models in the repository (folders with at least one version)."""
        if not self.root.is_dir():
            return []
        return sorted(
            child.name
            for child in self.root.iterdir()
            if NAME.fullmatch(child.name) and child.is_dir() and self.versions(child.name)
        )

    def versions(self, name: str) -> list[int]:
        """Version numbers on disk for ``name``, newest first (listed at most once every
        ``rescan_s`` seconds)."""
        if not NAME.fullmatch(name):
            return []
        now = time.monotonic()
        listed = self._listed.get(name)
        if listed is not None and now - listed[0] < self.rescan_s:
            return listed[1]
        folder = self.root / name
        try:
            found = [int(v.name) for v in folder.iterdir() if is_version(v.name) and v.is_dir()]
        except OSError:  # no such model, or not a folder
            found = []
        versions = sorted(found, reverse=True)
        for key in [key for key in self._loaded if key[0] == name and key[1] not in found]:
            LOG.info("model %s version %d: folder gone, unloaded", *key)
            self._loaded.pop(key, None)
        self._listed[name] = (now, versions)
        return versions

    def loaded(self) -> list[Servable]:
        """The versions loaded now."""
        return list(self._loaded.values())

    def status(self, name: str, version: int | None) -> list[dict[str, Any]]:
        """TF Serving's model_version_status entries."""
        versions = self.versions(name)
        if version is not None:
            versions = [v for v in versions if v == version]
        if not versions:
            raise RequestError(_not_found(name, version), 404)
        entries = []
        for number in versions:
            servable = self._load(name, number)
            error = self._failed.get((name, number), "")
            entries.append({
                "version": str(number),
                "state": "AVAILABLE" if servable is not None else "END",
                "status": {"error_code": "OK" if servable else "UNKNOWN", "error_message": error},
            })  # fmt: skip
        return entries

    def get(self, name: str, version: int | None, wait: bool = True) -> Servable | None:
        """The requested version, or the newest one that loads (see the module's text).
        With ``wait=False``, None where that version would have to be loaded first."""
        candidates = self.versions(name)
        if version is not None:
            candidates = [v for v in candidates if v == version]
        for position, number in enumerate(candidates):
            key = (name, number)
            servable = self._loaded.get(key)
            if servable is not None:
                return servable
            older_ready = any((name, v) in self._loaded for v in candidates[position + 1 :])
            if version is None and older_ready:
                if key not in self._failed:
                    self._load_in_background(name, number)
                continue
            if not wait and key not in self._failed:
                return None
            servable = self._load(name, number)
            if servable is not None:
                return servable
        raise RequestError(_not_found(name, version), 404)

    def servable(self, name: str, version: int | None) -> Servable:
        """:meth:`get`, which always returns a servable or raises a 404."""
        servable = self.get(name, version)
        assert servable is not None
        return servable

    def load_all(self) -> None:
        """Load the newest version of every model now, logging the ones that fail."""
        for name in self.names():
            try:
                self.servable(name, None)
            except RequestError:
                LOG.error("model %s: no version could be loaded", name)

    def _load_in_background(self, name: str, version: int) -> None:
        with self._lock:
            if (name, version) in self._pending:
                return
            self._pending.add((name, version))

        def load() -> None:
            try:
                self._load(name, version)
            finally:
                with self._lock:
                    self._pending.discard((name, version))

        threading.Thread(target=load, name=f"load {name} {version}", daemon=True).start()

    def _load(self, name: str, version: int) -> Servable | None:
        """The loaded version, loading it first if needed. Each version has its own lock,
        so loading one never holds up requests to the others."""
        key = (name, version)
        folder = self.root / name / str(version)
        if not folder.is_dir():
            self._loaded.pop(key, None)
            return None
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:
            if key in self._loaded:
                return self._loaded[key]
            if key in self._failed:
                return None
            try:
                servable = _load_saved_model(folder, name, version)
            except Exception as error:  # a corrupt or half-copied folder: skip it, say why
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                self._failed[key] = f"{type(error).__name__}: {reason}"
                LOG.error("model %s version %d at %s not loaded: %s", name, version, folder,
                          self._failed[key])  # fmt: skip
                return None
            if self.on_load is not None:
                self.on_load(servable)
            self._loaded[key] = servable
            LOG.info("model %s version %d loaded from %s", name, version, folder)
            return servable


def _not_found(name: str, version: int | None) -> str:
    request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return f"Servable not found for request: {request}"


# Modules of TensorFlow ops a SavedModel's graph may need imported before it loads (a
# keras-hub tokenizer's), and the package that installs each.
OP_MODULES = {"tensorflow_text": "tensorflow-text"}


def _load_saved_model(folder: Path, name: str, version: int) -> Servable:
    import tensorflow as tf

    facts_file = folder / FACTS
    facts = json.loads(facts_file.read_text()) if facts_file.is_file() else {}
    for module in facts.get("op_modules", []):  # TensorFlow ops the graph needs registered
        if module not in OP_MODULES:
            raise ValueError(
                f"its facts name {module!r} as a module of TensorFlow ops; only "
                f"{', '.join(OP_MODULES)} is imported (a repository names no code to run)"
            )
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(
                f"its graph uses the ops of {module}, which is not installed; install the "
                f"release matching TensorFlow {tf.__version__} (pip install "
                f"{OP_MODULES[module]}=={'.'.join(tf.__version__.split('.')[:2])}.*)"
            ) from None
    loaded = tf.saved_model.load(str(folder))
    if SIGNATURE not in loaded.signatures:
        raise ValueError(f"no {SIGNATURE} signature (has {sorted(loaded.signatures)})")
    function = loaded.signatures[SIGNATURE]
    inputs = function.structured_input_signature[1]
    outputs = function.structured_outputs
    return Servable(name, version, function, dict(inputs), dict(outputs), facts, loaded)
