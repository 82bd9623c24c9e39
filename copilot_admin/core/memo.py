"""`BoundedMemo`: what one process remembers between requests, within a bound.

The hot path keeps a few facts and hints per process (a token's owner, an integration key's
tenant, the acting member an e-mail named, the reads of a member's next call): each saves a
round trip, none may grow without limit in a long-running worker. A `BoundedMemo` is a dict that
`remember` empties when it is full (a forgotten entry costs one round trip, never a wrong
answer: what is kept is a fact that cannot change, or a hint checked on every use).
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_SIZE = 10_000


class BoundedMemo(dict, Generic[K, V]):
    """A dict of at most `size` entries: `remember` empties it first when it is full."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        super().__init__()
        if size < 1:
            raise ValueError("A memo holds at least one entry.")
        self.size = size

    def remember(self, key: K, value: V) -> V:
        if key not in self and len(self) >= self.size:
            self.clear()
        self[key] = value
        return value
