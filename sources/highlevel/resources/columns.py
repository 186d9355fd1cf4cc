"""Column hint builders. Each call returns fresh dicts: dlt annotates hint dicts in place, so a
dict shared between two columns would end up carrying the other column's name."""

from __future__ import annotations

from typing import Any


def ts(**extra: Any) -> dict[str, Any]:
    """A UTC timestamp column."""
    return {"data_type": "timestamp", "timezone": True, **extra}


def text(nullable: bool = True) -> dict[str, Any]:
    return {"data_type": "text", "nullable": nullable}


def json_column() -> dict[str, Any]:
    return {"data_type": "json"}


def location_key() -> dict[str, Any]:
    return {"location_id": text(nullable=False)}
