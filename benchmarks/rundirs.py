"""Names of the run dirs that the benchmarks keep (their `--keep FOLDER`)."""
from __future__ import annotations

import re
from typing import Iterable


def run_dir_name(preset: str, sets: Iterable[str], *parts: object) -> str:
    """``PRESET[-KEY_VALUE...]-PART...``: each ``--set KEY=VALUE`` lever names its own run dir, so runs of two
    levers kept under one folder do not collide (ganforge refuses to start a new run in a used run dir)."""
    lever = "".join(f"-{re.sub(r'[^A-Za-z0-9.]+', '_', item)}" for item in sets)
    return "-".join([f"{preset}{lever}", *map(str, parts)])
