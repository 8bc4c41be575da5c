"""Stable, readable keyword texts for a simulated campaign (so traces can be ingested)."""

from __future__ import annotations

import numpy as np

_MODIFIERS = (
    "buy", "cheap", "best", "discount", "online", "local", "premium", "used", "new", "custom",
    "organic", "wholesale", "fast", "eco", "luxury", "kids", "womens", "mens", "vintage", "smart",
)  # fmt: skip
_ADJECTIVES = (
    "running", "leather", "wireless", "wooden", "waterproof", "electric", "portable", "outdoor",
    "ceramic", "stainless", "cotton", "folding", "ergonomic", "solar", "digital", "handmade",
)  # fmt: skip
_NOUNS = (
    "shoes", "boots", "jacket", "headphones", "desk", "chair", "lamp", "backpack", "tent",
    "kettle", "blender", "watch", "bicycle", "mattress", "sofa", "camera", "speaker", "drill",
    "rug", "mug", "sunglasses", "scarf", "grill", "stroller", "printer", "router", "vacuum",
)  # fmt: skip


def _pick(words: tuple[str, ...], rng: np.random.Generator) -> str:
    """``rng.choice(words)``: the same draw (``rng.integers(len(words))``), without converting
    the tuple to an array on every call (5x faster)."""
    return words[int(rng.integers(len(words)))]


def keyword_texts(n: int, rng: np.random.Generator) -> tuple[str, ...]:
    """``n`` distinct texts such as ``cheap waterproof boots``; the same rng gives the same list."""
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < n:
        parts = [_pick(_ADJECTIVES, rng), _pick(_NOUNS, rng)]
        if rng.random() < 0.6:
            parts.insert(0, _pick(_MODIFIERS, rng))
        text = " ".join(parts)
        if text in seen:
            # The vocabulary holds ~9k phrases; past that, a numbered variant stays unique.
            text = f"{text} {len(texts)}"
        seen.add(text)
        texts.append(text)
    return tuple(texts)
