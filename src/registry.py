"""A tiny name -> factory registry with errors that list the allowed names.

Used for permuters, selectors, datasets and metrics alike, so every "unknown X" error looks the
same and no module branches on names.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A user-facing configuration error: one line naming the bad value and what is allowed."""


class Registry(Generic[T]):
    """Maps names to factories; `build` checks the name and the keyword arguments."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._factories:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names()) or '(none registered)'}"
            )
        return self._factories[name]

    def build(self, name: str, params: Mapping[str, Any] | None = None) -> T:
        """Instantiate `name` with `params`, rejecting parameters the factory does not take."""
        factory = self.get(name)
        params = dict(params or {})
        accepted = inspect.signature(factory).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise ConfigError(
                    f"{self.kind} {name!r} got unknown parameter(s) {', '.join(unknown)}; "
                    f"allowed: {', '.join(accepted)}"
                )
        return factory(**params)
