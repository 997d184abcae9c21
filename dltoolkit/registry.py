"""A small name -> callable registry used for model builders and data sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dltoolkit.errors import ConfigError, did_you_mean

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to callables; duplicate names raise, unknown names list the known ones.

    Args:
        kind: what the registry holds, used in error messages ("model builder").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering a callable under ``name``."""

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered.")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        """Return the callable registered as ``name`` or raise ConfigError."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; known: {known}."
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
