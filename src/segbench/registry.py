"""A tiny registry of builder functions, looked up by name with "did you mean" suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from segbench.errors import UserError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """A name -> callable mapping.

    Args:
        kind: what is registered ("model", "dataset"), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering a function under ``name`` (default: the function's name).

        Raises:
            ValueError: if the name is already taken.
        """

        def deco(fn: T) -> T:
            key = name or fn.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = fn
            return fn

        return deco

    def get(self, name: str) -> T:
        """Return the callable registered as ``name``.

        Raises:
            UserError: unknown name; the message lists close names, or all names.
        """
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(self._items))}"
            raise UserError(f"unknown {self.kind} {name!r}; {hint}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
