"""Declarative search spaces: one YAML file per recipe in ``tuning/``, read into parameters
that declare themselves on a KerasTuner ``HyperParameters`` object.

A space file::

    objective: val_loss          # optional: default the recipe's early-stopping monitor;
                                 # cv_<score> (cv_roc_auc): the data.folds CV mean
    direction: min               # optional: max for accuracies and AUCs, else min
    tuner: bayesian              # random | bayesian | hyperband
    max_trials: 20
    space:
      train.learning_rate: {float: [0.0001, 0.01], sampling: log}
      train.batch_size: {choice: [32, 64, 128]}
      model.dropout: {float: [0.0, 0.5], step: 0.1}
      model.batch_norm: {boolean: true}
      model.cell: {choice: [lstm, gru]}
      model.recurrent_dropout: {float: [0.0, 0.3], when: {model.cell: [lstm]}}
      model.hidden_units:                    # a list: its length, then one entry per layer
        layers: {int: [1, 3]}
        units: {int: [16, 256], sampling: log}

Keys are dotted config paths under ``model.`` (a hyperparameter of the recipe's builder)
or ``train.``. ``when`` makes a parameter conditional on earlier ``choice`` parameters.
Nothing here imports Keras or KerasTuner: a space is checked before any trial starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dltoolkit.config import read_yaml
from dltoolkit.errors import ConfigError, did_you_mean

TUNERS = ("random", "bayesian", "hyperband")
KINDS = ("int", "float", "choice", "boolean")


def tuning_dir() -> Path:
    """Folder of the search-space files (inside the wheel, or the source checkout)."""
    package = Path(__file__).parent.parent
    bundled = package / "search_spaces"
    return bundled if bundled.is_dir() else package.parent / "tuning"


@dataclasses.dataclass
class Parameter:
    """One tunable value at a dotted config path.

    ``kind`` is int, float, choice, boolean or list; ``low``/``high``/``step``/``sampling``
    for numbers, ``values`` for a choice, ``length`` and ``item`` for a list. ``when``
    maps an earlier choice's path to the values under which this one is active.
    """

    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    sampling: str = "linear"
    values: list[Any] = dataclasses.field(default_factory=list)
    default: Any = None
    length: Parameter | None = None
    item: Parameter | None = None
    when: dict[str, list[Any]] = dataclasses.field(default_factory=dict)

    def candidates(self) -> list[Any]:
        """Values that span the parameter (its ends, or every choice), for checking them
        against the config before a search."""
        if self.kind == "list":
            longest = int(self.length.high)
            return [[value] * count for value in self.item.candidates() for count in
                    (int(self.length.low), longest)]  # fmt: skip
        if self.kind == "boolean":
            return [False, True]
        if self.kind == "choice":
            return list(self.values)
        return [self.low, self.high]

    def declare(self, hp: Any) -> Any:
        """Declare the parameter on KerasTuner ``hp`` (idempotent) and return its value,
        or None when a ``when`` condition leaves it inactive."""
        if self.when:
            parent, values = next(iter(self.when.items()))
            with hp.conditional_scope(parent, [_hp_value(value) for value in values]):
                return self._declare(hp)
        return self._declare(hp)

    def _declare(self, hp: Any) -> Any:
        name = self.path
        if self.kind == "int":
            return hp.Int(
                name, int(self.low), int(self.high), step=_int_step(self), sampling=self.sampling
            )
        if self.kind == "float":
            return hp.Float(name, self.low, self.high, step=self.step, sampling=self.sampling)
        if self.kind == "boolean":
            return hp.Boolean(name, default=bool(self.default))
        if self.kind == "choice":
            encoded = [_hp_value(value) for value in self.values]
            chosen = hp.Choice(name, encoded)
            return None if chosen is None else self.values[encoded.index(chosen)]
        count = self.length._declare(hp)
        if count is None:  # inactive under a ``when``
            return None
        items = []
        for index in range(int(self.length.high)):
            active = list(range(index + 1, int(self.length.high) + 1))
            with hp.conditional_scope(self.length.path, active):
                item = dataclasses.replace(self.item, path=f"{self.path}.{index + 1}")
                value = item._declare(hp)
            if index < count:
                items.append(value)
        return items


def _int_step(parameter: Parameter) -> int | None:
    if parameter.sampling != "linear":
        return None
    return int(parameter.step) if parameter.step else 1


def _hp_value(value: Any) -> Any:
    """KerasTuner choices hold numbers, strings and booleans; lists become YAML text."""
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return value


@dataclasses.dataclass
class SearchSpace:
    """A parsed search-space file."""

    parameters: list[Parameter]
    objective: str | None = None
    direction: str | None = None
    tuner: str = "bayesian"
    max_trials: int = 10
    source: str = ""

    def sample(self, hp: Any) -> dict[str, Any]:
        """Declare every parameter on ``hp``; return ``{path: value}`` of the active ones."""
        values = {}
        for parameter in self.parameters:
            value = parameter.declare(hp)
            if value is not None or not parameter.when:
                values[parameter.path] = value
        return values

    def fingerprint(self) -> str:
        """A short hash of the parameters (a resumed search must use the same space)."""
        text = json.dumps([dataclasses.asdict(p) for p in self.parameters], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_space(path: str | Path) -> SearchSpace:
    """Read and check a search-space YAML file; one-line ConfigErrors for bad entries."""
    raw = read_yaml(path)
    known = {"objective", "direction", "tuner", "max_trials", "space", "description"}
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key {key!r}{did_you_mean(key, known)}; valid keys: "
                f"{', '.join(sorted(known))}."
            )
    space = raw.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{path}: 'space' must be a mapping of config paths to ranges.")
    parameters: list[Parameter] = []
    for key, spec in space.items():
        parameters.append(parse_parameter(str(key), spec, parameters, str(path)))
    tuner = raw.get("tuner", "bayesian")
    check_tuner(tuner)
    direction = raw.get("direction")
    if direction not in (None, "min", "max"):
        raise ConfigError(f"{path}: direction must be min or max, received {direction!r}.")
    max_trials = raw.get("max_trials", 10)
    if not isinstance(max_trials, int) or max_trials < 1:
        raise ConfigError(
            f"{path}: max_trials must be a positive integer, received {max_trials!r}."
        )
    return SearchSpace(parameters, raw.get("objective"), direction, tuner, max_trials, str(path))


def check_tuner(name: str) -> str:
    """Raise ConfigError unless ``name`` is a known tuner."""
    if name not in TUNERS:
        raise ConfigError(
            f"unknown tuner {name!r}{did_you_mean(str(name), TUNERS)}; expected one of "
            f"{', '.join(TUNERS)}."
        )
    return name


def parse_parameter(
    path: str, spec: Any, earlier: Sequence[Parameter], source: str = "space"
) -> Parameter:
    """One ``path: spec`` entry of a space as a Parameter (see the module docstring)."""
    where = f"{source}: {path}"
    if not path.startswith(("model.", "train.")) or path in ("model.builder",):
        raise ConfigError(
            f"{where}: only model.* (builder hyperparameters) and train.* settings can be "
            "tuned; the data and the builder are fixed for a search."
        )
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where} must be a mapping such as {{float: [0.0001, 0.01], sampling: log}} or "
            f"{{choice: [32, 64]}}, received {spec!r}."
        )
    spec = dict(spec)
    when = _parse_when(where, spec.pop("when", None), earlier)
    if "layers" in spec or "units" in spec:
        if set(spec) != {"layers", "units"}:
            raise ConfigError(f"{where}: a list needs exactly 'layers' and 'units' entries.")
        length = parse_parameter(f"{path}.layers", spec["layers"], earlier, source)
        item = parse_parameter(f"{path}.units", spec["units"], earlier, source)
        if length.kind != "int" or length.low < 1:
            raise ConfigError(
                f"{where}.layers must be an int range from 1 up, e.g. {{int: [1, 3]}}."
            )
        return Parameter(path, "list", length=length, item=item, when=when)
    kinds = [kind for kind in KINDS if kind in spec]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where} needs exactly one of {', '.join(KINDS)}, received keys {sorted(spec)}."
        )
    kind = kinds[0]
    extra = set(spec) - {kind, "step", "sampling"}
    if extra:
        raise ConfigError(
            f"{where}: unknown keys {sorted(extra)} (allowed: {kind}, step, sampling, when)."
        )
    if kind == "choice":
        values = spec["choice"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: choice must be a non-empty list, received {values!r}.")
        return Parameter(path, "choice", values=values, when=when)
    if kind == "boolean":
        return Parameter(path, "boolean", default=bool(spec["boolean"]), when=when)
    bounds = spec[kind]
    numbers = (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)
    )
    if not numbers:
        raise ConfigError(f"{where}: {kind} needs [low, high] numbers, received {bounds!r}.")
    low, high = bounds
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise ConfigError(f"{where}: int range needs whole numbers, received {bounds!r}.")
    if not low < high:
        what = "empty" if low == high else "inverted"
        raise ConfigError(
            f"{where}: the range {bounds!r} is {what}; write it as [low, high] with low < high."
        )
    sampling = spec.get("sampling", "linear")
    if sampling not in ("linear", "log", "reverse_log"):
        raise ConfigError(
            f"{where}: sampling must be linear, log or reverse_log, received {sampling!r}."
        )
    if sampling != "linear" and low <= 0:
        raise ConfigError(
            f"{where}: {sampling} sampling needs a range above zero, received {bounds!r}; "
            "raise low or use sampling: linear."
        )
    step = spec.get("step")
    if step is not None and sampling != "linear":
        raise ConfigError(
            f"{where}: step applies to linear sampling only; drop it or use sampling: linear."
        )
    if step is not None and (not isinstance(step, (int, float)) or step <= 0 or step > high - low):
        raise ConfigError(
            f"{where}: step must be a positive number up to high - low, received {step!r}."
        )
    if step is not None and kind == "int" and not float(step).is_integer():
        raise ConfigError(f"{where}: an int range needs a whole step, received {step!r}.")
    return Parameter(path, kind, low=low, high=high, step=step, sampling=sampling, when=when)


def _parse_when(where: str, when: Any, earlier: Sequence[Parameter]) -> dict[str, list[Any]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or len(when) != 1:
        raise ConfigError(
            f"{where}: when must map one earlier choice to its values, e.g. {{model.cell: [lstm]}}."
        )
    parent, values = next(iter(when.items()))
    choices = {p.path: p for p in earlier if p.kind in ("choice", "boolean")}
    if parent not in choices:
        raise ConfigError(
            f"{where}: when names {parent!r}, which is not an earlier choice or boolean of this "
            f"space{did_you_mean(str(parent), list(choices))}."
        )
    values = values if isinstance(values, list) else [values]
    allowed = choices[parent].candidates()
    for value in values:
        if value not in allowed:
            raise ConfigError(f"{where}: when {parent} = {value!r}, which is not one of {allowed}.")
    return {parent: values}


def overrides_yaml(values: dict[str, Any], header: str) -> str:
    """Dotted ``{path: value}`` as a nested YAML mapping (``model: {units: ...}``) that
    ``dltk recipe NAME --config FILE`` applies, headed by comment lines."""
    nested: dict[str, Any] = {}
    for path, value in values.items():
        node = nested
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(nested, sort_keys=False, width=100)


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted ``{path: value}`` (the inverse of :func:`overrides_yaml`)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat
