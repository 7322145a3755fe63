"""Writing a JSON file atomically: through a temporary file next to it, so a crash leaves the old file or the new
one, never half of one (eval.json, tide.json, sizes.json, the analysis tools' --json)."""
from __future__ import annotations

import json
import os
from typing import Any


def write_json_atomic(path: str, obj: Any, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` via ``<path>.tmp<pid>`` and ``os.replace``."""
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=indent)
    os.replace(tmp, path)
