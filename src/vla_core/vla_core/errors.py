"""Typed configuration errors that say where the bad value is and what to change."""
from __future__ import annotations


class ConfigError(ValueError):
    """One or more configuration problems, each naming the file, the key and the fix.

    ``problems`` keeps every message so that callers can report them all at once instead of one per run.
    """

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            super().__init__(head + self.problems[0])
        else:
            super().__init__(head + f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems))
