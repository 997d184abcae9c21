"""Loading a configuration: recipes by name or YAML files, override files merged section by
section, ``--set section.key=value`` overrides, and coercion of every value to its field's
type with dotted-path errors."""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from dltoolkit.config.checks import check_values
from dltoolkit.config.schema import RunConfig
from dltoolkit.errors import ConfigError, did_you_mean

# === Recipes ===


def recipes_dir() -> Path:
    """Folder holding the recipe YAML files (inside the wheel, or the source checkout)."""
    package = Path(__file__).parent.parent
    bundled = package / "recipes"
    return bundled if bundled.is_dir() else package.parent / "recipes"


def recipe_names() -> list[str]:
    """Names of the recipes that ship with the toolkit."""
    return sorted(path.stem for path in recipes_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """Path of recipe ``name``; unknown names raise with a suggestion."""
    path = recipes_dir() / f"{name}.yaml"
    if not path.is_file():
        names = recipe_names()
        raise ConfigError(
            f"unknown recipe {name!r}{did_you_mean(name, names)}; "
            f"known recipes: {', '.join(names)}. List them with `dltk recipe list`."
        )
    return path


# === Loading ===


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file path.")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: fix the syntax.") from None
    if not isinstance(content, dict):
        raise ConfigError(
            f"{path} holds a {type(content).__name__}, expected a mapping of sections "
            "(name, data, model, train, ...)."
        )
    return content


def load_config(
    recipe_or_file: str | Path,
    overrides: typing.Sequence[str] = (),
    override_files: typing.Sequence[str | Path] = (),
) -> RunConfig:
    """Load a recipe by name or a YAML file, merge override files, apply ``key=value``
    overrides, validate.

    Args:
        recipe_or_file: a recipe name (``cnn-image``) or a path to a YAML file.
        overrides: strings like ``train.epochs=5`` or ``model.filters=[32,64]``.
        override_files: YAML mappings merged in order, section by section (e.g. the
            ``best.yaml`` of a search); ``overrides`` still win.

    Returns:
        The validated RunConfig.
    """
    text = str(recipe_or_file)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        raw = read_yaml(text)
    else:
        raw = read_yaml(recipe_path(text))
        raw.setdefault("name", text)
    for path in override_files:
        raw = merge(raw, read_yaml(path))
    raw = apply_overrides(raw, overrides)
    return from_dict(raw)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in: mappings key by key, anything else
    replaced."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], parsed YAML value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r} is not of the form section.key=value (e.g. --set train.epochs=5)."
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"override {text!r}: value {value!r} is not valid YAML.") from None
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b=value`` override set."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(keys[: depth + 1])
                raise ConfigError(
                    f"override {text!r}: {dotted} is a value, not a section; "
                    f"set {dotted}=... instead."
                )
            node = child
        node[keys[-1]] = value
    return raw


def with_values(config: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``config`` with each dotted ``path: value`` set, validated."""
    raw = copy.deepcopy(config.to_dict())
    for path, value in values.items():
        node = raw
        *parents, last = path.split(".")
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                section = ".".join(parents[: depth + 1])
                raise ConfigError(f"{path}: {section} is not a config section.")
            node = node[key]
        node[last] = value
    return from_dict(raw)


# === Building and coercion ===


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from nested dicts, with dotted-path errors for bad keys and types."""
    if "name" not in raw:
        raise ConfigError("config has no 'name'; add e.g. `name: my-run` at the top level.")
    config = _build_dataclass(RunConfig, raw, "")
    check_values(config)
    return config


def _build_dataclass(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path or 'config'} must be a mapping, received {type(raw).__name__} {raw!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            dotted = f"{path}.{key}" if path else str(key)
            suggestions = [f"{path}.{name}" if path else name for name in fields]
            raise ConfigError(
                f"unknown config key {dotted!r}{did_you_mean(dotted, suggestions)}; "
                f"valid keys{' in ' + path if path else ''}: {', '.join(fields)}."
            )
    values = {}
    for name, value in raw.items():
        dotted = f"{path}.{name}" if path else name
        values[name] = coerce(value, hints[name], dotted)
    return cls(**values)


_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def coerce(value: Any, annotation: Any, path: str) -> Any:
    """Check ``value`` against a type annotation, converting int -> float and tuple -> list.

    Raises ConfigError naming ``path``, the value received and the type expected.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, path)
            except ConfigError:
                continue
        raise _type_error(path, value, annotation)
    if dataclasses.is_dataclass(annotation):
        return _build_dataclass(annotation, value, path)
    if annotation is Any:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(annotation):
            return value
        raise _type_error(path, value, annotation)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            raise _type_error(path, value, annotation)
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        return [coerce(item, item_type, f"{path}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(path, value, annotation)
        return value
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
        raise _type_error(path, value, annotation)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(path, value, annotation)
    if annotation in (str, bool):
        if isinstance(value, annotation):
            return value
        raise _type_error(path, value, annotation)
    raise TypeError(f"unsupported annotation {annotation!r} at {path}")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    if origin is not None:
        args = typing.get_args(annotation)
        inner = f" of {_type_name(args[0])}" if args else ""
        return f"a list{inner}"
    plain = {
        type(None): "null",
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
    }
    return plain.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _type_error(path: str, value: Any, annotation: Any) -> ConfigError:
    return ConfigError(
        f"{path} must be {_type_name(annotation)}, received {value!r} "
        f"({type(value).__name__}); fix it in the config or with --set {path}=..."
    )
