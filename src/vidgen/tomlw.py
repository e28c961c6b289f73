"""A small TOML writer for the documents vidgen itself writes (run configs, the user's registry overlay).

Python reads TOML (`tomllib`) but cannot write it. Supported values: str, bool, int, float, lists of
those, and nested tables (dicts); a list of dicts becomes an array of tables. Keys are emitted in the
order given, so output is stable. Everything written here reads back with `tomllib` to the same data.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are a subset of TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, Mapping) for v in value)


def dumps(document: Mapping[str, Any], inline_depth: int = 99) -> str:
    """TOML text for `document`. Tables nested deeper than `inline_depth` are written inline."""
    lines: list[str] = []
    _write_table(lines, [], document, inline_depth)
    return "\n".join(lines).strip() + "\n"


def _write_table(lines: list[str], path: list[str], table: Mapping[str, Any], inline_depth: int) -> None:
    subtables = []
    for key, value in table.items():
        if value is None:
            continue
        nested = isinstance(value, Mapping) and len(path) < inline_depth
        if nested or _is_table_array(value):
            subtables.append((key, value))
        else:
            lines.append(f"{_key(str(key))} = {_value(value)}")
    for key, value in subtables:
        sub_path = [*path, _key(str(key))]
        if isinstance(value, Mapping):
            lines.extend(["", f"[{'.'.join(sub_path)}]"])
            _write_table(lines, sub_path, value, inline_depth)
        else:
            for item in value:
                lines.extend(["", f"[[{'.'.join(sub_path)}]]"])
                _write_table(lines, sub_path, item, inline_depth)
