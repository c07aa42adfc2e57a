"""Typed configs loaded from YAML (`configs/`), with `key=value` overrides from the command line."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def repo_root() -> Path:
    """The project folder that holds `data/` and `configs/`: $JDLENS_HOME, else the current folder."""
    return Path(os.environ.get("JDLENS_HOME", ".")).resolve()


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {value!r}")
    if isinstance(like, int) and not isinstance(like, bool):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, list):
        return [v.strip() for v in value.split(",") if v.strip()]
    if like is None:
        return yaml.safe_load(value)
    return value


def load_config(cls: type[T], path: Path | None = None, overrides: list[str] | None = None) -> T:
    """Build dataclass `cls` from a YAML file and `key=value` overrides; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config must be a mapping of keys to values")
        values.update(loaded)
    defaults = cls()  # type: ignore[call-arg]
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        if key not in names:
            raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(sorted(names))}")
        values[key] = _coerce(raw, values.get(key, getattr(defaults, key)))
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {sorted(unknown)}; known: {', '.join(sorted(names))}")
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if check:
        check()
    return obj
