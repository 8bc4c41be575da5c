"""JSON request bodies read strictly: an object that names a key twice is refused.

RFC 8259 leaves duplicate names to the parser, and Python's keeps the last one, so
``{"bid_micros": 1000000, "bid_micros": 90000000}`` set the second bid without a word.
Where a body moves money, a sender's mistake should be an error that names the key, not a
guess. The API's routes (``adbot.api.routing.StrictJsonRoute``) and the ingestion of
performance rows both read JSON through :func:`loads`.
"""

from __future__ import annotations

import json
from typing import Any

SHOWN_KEY = 100  # characters of a duplicated key named in the message (keys may be long)


class DuplicateKey(json.JSONDecodeError):
    """An object names ``key`` twice; a ``JSONDecodeError``, so every caller that takes
    malformed JSON takes this too (at position 0: the hook does not see where it was)."""

    def __init__(self, key: str, document: str | bytes) -> None:
        text = document if isinstance(document, str) else document.decode("utf-8", "replace")
        shown = key if len(key) <= SHOWN_KEY else key[:SHOWN_KEY] + "..."
        super().__init__(f"duplicate key {shown!r}", text, 0)
        self.key = key

    def __str__(self) -> str:
        return self.msg  # no "line 1 column 1 (char 0)": the hook does not know where


def loads(document: str | bytes) -> Any:
    """``json.loads``, refusing an object with a key twice (:class:`DuplicateKey`)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise DuplicateKey(key, document)
                seen.add(key)
        return result

    return json.loads(document, object_pairs_hook=unique)
