"""Writing a JSON file atomically (eval.json, tide.json, sizes.json, the analysis tools' --json): the one writer,
``utils.atomic``."""
from __future__ import annotations

from .atomic import write_json_atomic

__all__ = ['write_json_atomic']
