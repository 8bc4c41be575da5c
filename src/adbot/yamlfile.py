"""YAML read as its authors mean it: YAML 1.2 scalars, and no key given twice.

PyYAML's safe loader follows YAML 1.1, where ``4e4`` is a string (so ``daily_queries: 4e4``
was refused as "not a number"), ``010`` is octal 8, ``2_0`` is 20 and ``no`` is false.
YAML 1.2's core schema, which current YAML tools follow, reads ``4e4`` as 40000.0, ``010``
as 10, and ``2_0`` and ``no`` as strings (which a numeric or boolean field then refuses by
name). A key written twice in one mapping silently kept its last value; here it is an error
that names the key and its line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"

# The core schema of YAML 1.2 (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_RESOLVERS = (
    (_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        _FLOAT,
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$"
        ),
        "-+.0123456789",
    ),
)


# libyaml's parser when PyYAML has it (its wheels do): the same documents and marks, about
# five times as fast on a large file; the constructor and resolver stay PyYAML's own.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """The safe loader with YAML 1.2 core scalars and duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Only the mapping's own keys: a key may override one brought in by a merge (<<).
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base constructor names it
                continue
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Replace 1.1's implicit bool/int/float rules (a copy: SafeLoader's own stay as they are).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regexp, _first in _CORE_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, _regexp, list(_first))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.2 or 1.1 would read as something else (``4e4``,
    ``no``), so that either kind of reader gets the string back."""


_Dumper.yaml_implicit_resolvers = {
    first: _Loader.yaml_implicit_resolvers.get(first, [])
    + yaml.SafeDumper.yaml_implicit_resolvers.get(first, [])
    for first in {*_Loader.yaml_implicit_resolvers, *yaml.SafeDumper.yaml_implicit_resolvers}
}


def _scalar(loader: _Loader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))


def _construct_bool(loader: _Loader, node: yaml.Node) -> bool:
    text = _scalar(loader, node)
    if text.lower() not in ("true", "false"):
        raise ConstructorError(None, None, f"not a boolean: {text!r}", node.start_mark)
    return text.lower() == "true"


def _construct_int(loader: _Loader, node: yaml.Node) -> int:
    text = _scalar(loader, node)
    try:
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)
    except ValueError:
        raise ConstructorError(None, None, f"not an integer: {text!r}", node.start_mark) from None


def _construct_float(loader: _Loader, node: yaml.Node) -> float:
    text = _scalar(loader, node)
    special = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
    if text.lower() in special:
        return special[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise ConstructorError(None, None, f"not a number: {text!r}", node.start_mark) from None


_Loader.add_constructor(_BOOL, _construct_bool)
_Loader.add_constructor(_INT, _construct_int)
_Loader.add_constructor(_FLOAT, _construct_float)


def parse_yaml(text: str) -> object:
    """The document in ``text``; ``ValueError`` with a one-line reason if it is not valid
    YAML (``not valid YAML (line 3: duplicate key 'name')``)."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = " ".join(str(getattr(exc, "problem", None) or "").split())
        where = [f"line {mark.line + 1}"] if mark is not None else []
        reason = ": ".join([*where, problem] if problem else where)
        raise ValueError(f"not valid YAML ({reason})" if reason else "not valid YAML") from None
    except RecursionError:
        raise ValueError("not valid YAML (nested too deeply)") from None


def read_yaml(path: Path) -> object:
    """The document in the UTF-8 file ``path``; ``ValueError`` with a one-line reason if it
    cannot be read (``cannot be read (UnicodeDecodeError)``) or is not valid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read ({exc.__class__.__name__})") from None
    return parse_yaml(text)


def dump_yaml(data: object) -> str:
    """``data`` as YAML that ``parse_yaml`` reads back equal (keys in their given order)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)
