"""YAML as YAML 1.2 reads it: scalars, duplicate keys, and a dump that reads back equal."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from adbot.yamlfile import dump_yaml, parse_yaml, read_yaml

# Too deep a nesting: libyaml's parser stops it with its own line; PyYAML's pure-Python one
# (without libyaml) overflows Python's recursion, which parse_yaml turns into a line.
TOO_DEEP = (
    "line 1: exceeded maximum nesting depth" if yaml.__with_libyaml__ else "nested too deeply"
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4e4", 40000.0),
        ("-1.5E-3", -0.0015),
        (".5", 0.5),
        ("1.", 1.0),
        ("010", 10),  # 1.1: octal 8
        ("0o17", 15),
        ("0x1F", 31),
        ("+12", 12),
        ("2_0", "2_0"),  # 1.1: 20
        ("1:20", "1:20"),  # 1.1: sexagesimal 80
        ("no", "no"),  # 1.1: false
        ("on", "on"),
        ("True", True),
        ("false", False),
        ("~", None),
        ("-.inf", -math.inf),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    assert parse_yaml(f"a: {text}") == {"a": value}


def test_nan_is_a_float() -> None:
    value = parse_yaml("a: .NaN")
    assert isinstance(value, dict) and math.isnan(value["a"])


def test_a_key_given_twice_is_refused_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"^not valid YAML \(line 3: duplicate key 'b'\)$"):
        parse_yaml("a: 1\nb: 2\nb: 3\n")
    with pytest.raises(ValueError, match="duplicate key 'x'"):
        parse_yaml("outer:\n  x: 1\n  x: 2\n")


def test_a_merged_key_may_be_overridden() -> None:
    data = parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n")
    assert data == {"base": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}}


def test_broken_documents_are_one_line() -> None:
    for text in ("a: [", "a:\n - b\n c: 1", "a: !!int 0b11", "{[1]: 2}"):
        with pytest.raises(ValueError, match=r"^not valid YAML \(line \d+: ") as info:
            parse_yaml(text)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=rf"^not valid YAML \({TOO_DEEP}\)$"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000)


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="could not determine a constructor"):
        parse_yaml("a: !!python/object/apply:os.system ['true']")


def test_dump_reads_back_equal_under_yaml_1_2_and_1_1() -> None:
    data = {
        "strings": ["4e4", "010", "no", "2_0", "0x1F", "1:20", "plain", "True"],
        "numbers": [1, -2, 0.5, 1e-5, 3e20, math.inf],
        "flags": [True, False, None],
        "nested": {"b": 1, "a": [2, 3]},
    }
    text = dump_yaml(data)
    again = parse_yaml(text)
    assert again == data
    assert yaml.safe_load(text) == data
    assert isinstance(again, dict) and list(again) == list(data)  # keys keep their order


def test_read_yaml_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^cannot be read \(UnicodeDecodeError\)$"):
        read_yaml(latin)
    with pytest.raises(ValueError, match=r"^cannot be read \(IsADirectoryError\)$"):
        read_yaml(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text("a: 4e4\n")
    assert read_yaml(good) == {"a": 40000.0}
