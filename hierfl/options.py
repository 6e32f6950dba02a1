"""Config fields that describe themselves, and parsing values from text and TOML.

``option`` puts a field's help, bounds and choices in its metadata; ``check_fields`` checks any
dataclass of such fields (the core config and every plug-in's settings) with the same one-line
errors; ``coerce`` turns text from a command line into the field's type.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any

from hierfl.errors import ConfigError, UnknownNameError


def dashed(name: str) -> str:
    """A field's outside name: dashes, and no trailing ``_`` (``lambda_`` -> ``lambda``, for
    names that are Python keywords)."""
    return name.rstrip("_").replace("_", "-")


def option(
    default: Any,
    help: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    registry: str = "",
    bad: tuple[str, ...] = (),
) -> Any:
    """A config field: its default, one line of help, and what values it allows.

    Args:
        ge, gt, le, lt: bounds of a number (NaN and infinity are always refused).
        choices: the allowed strings.
        registry: the plug-in registry (``hierfl.registry``) whose names are allowed.
        bad: values a free-form string key refuses (used by the generated bad-value tests;
            numbers and choices get theirs from the bounds).
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    return field(default=default, metadata={**meta, "registry": registry, "bad": bad})


def check_fields(obj: Any, items: list[dataclasses.Field], prefix: str = "") -> None:
    """Check ``obj``'s values against the bounds and choices in each field's metadata."""
    for f in items:
        value, key = getattr(obj, f.name), prefix + dashed(f.name)
        meta = f.metadata
        choices = meta.get("choices")
        if isinstance(value, bool) or not isinstance(value, int | float):
            if choices is not None and value not in choices:
                raise UnknownNameError(key, str(value), list(choices))
            continue
        if not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {value}")
        if choices is not None and value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))}, got {value}")
        for bound, test in (
            ("ge", lambda v, b: v >= b),
            ("gt", lambda v, b: v > b),
            ("le", lambda v, b: v <= b),
            ("lt", lambda v, b: v < b),
        ):
            limit = meta.get(bound)
            if limit is not None and not test(value, limit):
                raise ConfigError(key, f"must be {_range(meta)}, got {value}")


def _range(meta: Mapping[str, Any]) -> str:
    """``> 0``, ``>= 1``, ``in [0, 1)`` ... from a field's bounds."""
    low = [f">= {meta['ge']:g}" if meta.get("ge") is not None else ""]
    low += [f"> {meta['gt']:g}" if meta.get("gt") is not None else ""]
    high = [f"<= {meta['le']:g}" if meta.get("le") is not None else ""]
    high += [f"< {meta['lt']:g}" if meta.get("lt") is not None else ""]
    parts = [p for p in low + high if p]
    return " and ".join(parts) if parts else "a finite number"


def parse_shape(key: str, text: str) -> tuple[int, int, int]:
    """Parse ``CxHxW`` (e.g. ``3x32x32``) into three positive ints."""
    parts = text.lower().split("x")
    try:
        c, h, w = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(key, f"expected CxHxW such as 3x32x32, got {text!r}") from None
    if min(c, h, w) <= 0:
        raise ConfigError(key, f"every dimension must be > 0, got {text!r}")
    return c, h, w


def coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` (maybe a string from the command line) to the type of ``default``."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool | int):
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, str):
                value = float(value) if value.strip().lower() not in ("nan", "inf") else value
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(value)
                value = int(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(key, f"expected {kind.__name__}, got {value!r}") from None


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Parse ``key=value`` strings."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "overrides must look like key=value")
        out[key.strip()] = value.strip().strip('"')
    return out


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file: flat keys or a ``[tool.flwr.app.config]`` table; plug-in tables
    (``[lwf] alpha = 1``) become dotted keys."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("flwr", {}).get("app", {}).get("config")
    return flatten(dict(table if table is not None else data))


def toml_value(value: object) -> str:
    """``value`` as a TOML literal (bool, number or string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables as dotted keys (``{"lwf": {"alpha": 1}}`` -> ``{"lwf.alpha": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Keys that moved into a plug-in's own settings (kept only for a helpful error).
MOVED = {
    "ewc-lambda": "ewc.lambda",
    "edge-replay-size": "edge-replay.size",
    "cloud-replay-size": "cloud-replay.size",
    "dirichlet-alpha": "dirichlet.alpha",
}


def unknown_key(key: str, known: Sequence[str]) -> str:
    """What to tell a user who set ``key``: where it moved, or the known keys close to it."""
    name = key.replace("_", "-")
    if name in MOVED:
        return f"moved to the plug-in's own settings: use {MOVED[name]}"
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
    if close:
        return f"unknown key; did you mean {' or '.join(close)}? (docs/reference.md lists all)"
    return "unknown key; docs/reference.md lists every key (core, and NAME.SETTING of plug-ins)"


def parse_delays(key: str, text: str, clients: int, experiences: int) -> dict[int, int | None]:
    """``PARTITION:DELAY`` pairs (``1:1,2:never``): partition -> experiences late (None: never)."""
    delays: dict[int, int | None] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        pid, sep, delay = item.partition(":")
        try:
            partition = int(pid)
            value = None if delay.strip() == "never" else int(delay)
        except ValueError:
            partition, value, sep = -1, 0, ""
        if (
            not sep
            or not 0 <= partition < clients
            or (value is not None and not 1 <= value < experiences)
        ):
            raise ConfigError(
                key,
                f"expected PARTITION:DELAY pairs such as '1:1,2:never' with partitions in "
                f"0..{clients - 1} and DELAY in 1..{experiences - 1} (experiences) "
                f"or 'never', got {text!r}",
            )
        delays[partition] = value
    return delays


def parse_outages(key: str, text: str, clients: int, total: int) -> dict[int, set[int]]:
    """``PARTITION:FIRST-LAST`` spans (``1:3-4,2:6``): partition -> rounds 1..``total``."""
    outages: dict[int, set[int]] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        pid, sep, span = item.partition(":")
        first, _, last = span.partition("-")
        try:
            partition, a, b = int(pid), int(first), int(last or first)
        except ValueError:
            partition, a, b, sep = -1, 0, 0, ""
        if not sep or not 0 <= partition < clients or not 1 <= a <= b <= total:
            raise ConfigError(
                key,
                f"expected PARTITION:FIRST-LAST round spans such as '1:3-4,2:6' with "
                f"partitions in 0..{clients - 1} and rounds in 1..{total} (run-wide, "
                f"experiences x rounds), got {text!r}",
            )
        outages.setdefault(partition, set()).update(range(a, b + 1))
    return outages


def parse_per_edge(key: str, text: str, allowed: Sequence[str]) -> dict[str, list[str]]:
    """``KEY=V0,V1,...;KEY=...`` (``cut=layer4,layer1,stem;edge-slowdown=1,4,16``): per key,
    the values of partitions 0, 1, ...; partition ``p`` takes value ``p mod len``."""
    table: dict[str, list[str]] = {}
    for item in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, values = item.partition("=")
        name = name.strip()
        listed = [v.strip() for v in values.split(",")]
        if not sep or not all(listed):
            raise ConfigError(
                key,
                f"expected KEY=V0,V1,... joined by ';' (values for partitions 0, 1, ...; "
                f"partition p takes value p mod their count), got {item!r}",
            )
        if name not in allowed or name in table:
            raise ConfigError(
                key,
                f"{name!r} {'repeats' if name in table else 'is not a per-edge key'}; "
                f"per-edge keys: {', '.join(allowed)}",
            )
        table[name] = listed
    return table
