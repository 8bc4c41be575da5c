"""Strict JSON bodies: a key named twice in one object is refused, by name."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adbot import jsonbody

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_documents_without_a_repeated_key_read_as_json_reads_them(value: object) -> None:
    text = json.dumps(value)
    assert jsonbody.loads(text) == json.loads(text)
    assert jsonbody.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ('{"bid_micros": 1000000, "bid_micros": 90000000}', "bid_micros"),
        ('{"changes": [{"keyword_id": 1, "bid_micros": 1, "bid_micros": 2}]}', "bid_micros"),
        ('{"a": {"b": {"c": 1, "d": 2, "c": 3}}}', "c"),
        ('{"\\u00e9": 1, "\u00e9": 2}', "\u00e9"),  # the same key, escaped or not
    ],
)
def test_a_key_named_twice_in_one_object_is_refused_by_name(document: str, key: str) -> None:
    with pytest.raises(jsonbody.DuplicateKey) as caught:
        jsonbody.loads(document)
    assert caught.value.key == key and str(caught.value) == f"duplicate key {key!r}"
    assert isinstance(caught.value, json.JSONDecodeError)  # malformed JSON to every caller


def test_the_same_key_in_two_objects_is_fine() -> None:
    assert jsonbody.loads('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


def test_a_long_duplicated_key_is_named_in_part() -> None:
    key = "k" * 200_000
    with pytest.raises(jsonbody.DuplicateKey) as caught:
        jsonbody.loads(json.dumps({key: 1}).replace("}", f', "{key}": 2}}'))
    assert caught.value.key == key
    assert str(caught.value) == f"duplicate key {'k' * jsonbody.SHOWN_KEY + '...'!r}"
