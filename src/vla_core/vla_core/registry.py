"""Named registries: policies, training algorithms, inference engines, teleop devices, simulated experts.

A registry maps a name (as written in a config, a parameter or on the command line) to a class or factory,
filled by a ``@REGISTRY.register("name")`` decorator next to the thing registered. Looking up a name that is
not there raises :class:`UnknownName` (a ``KeyError`` and a ``ValueError``), whose message names the value,
the closest registered name and every accepted one, so that a typo in a config says how to fix it.
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError, ValueError):
    """A name no registry entry has. ``str()`` is the message (a plain KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Names of one kind of thing (``kind``, e.g. 'policy type'), each bound once to a class or factory.

    ``name_attr``: when given, every entry bound gets its name as that attribute (``cls.type_name = "act"``),
    so that a registered class knows what it is called in configs.
    """

    def __init__(self, kind: str, name_attr: str | None = None):
        self.kind = kind
        self.name_attr = name_attr
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: bind ``name`` to the decorated class or function (a second binding is an error)."""
        def bind(entry: T) -> T:
            self.add(name, entry)
            return entry
        return bind

    def add(self, name: str, entry: T) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind}: a registered name must be a non-empty string, got {name!r}")
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} '{name}' is registered twice ({self._entries[name]!r} and {entry!r})")
        if self.name_attr is not None:
            setattr(entry, self.name_attr, name)
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry of ``name``; :class:`UnknownName` naming the accepted names when there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownName(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name``: the closest accepted one, then all of them."""
        close = difflib.get_close_matches(str(name), self._entries, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown {self.kind} {name!r}; {hint}accepted: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
