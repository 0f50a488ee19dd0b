"""Metrics as a registry: name → function(samples, data) → dict of numbers.

The same functions run during training (at each sample interval) and from ``ganforge eval``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

import torch

from ..errors import GanforgeError

Metric = Callable[[torch.Tensor, object], Dict[str, float]]
REGISTRY: Dict[str, Metric] = {}
_APPLIES: Dict[str, Callable[[object], bool]] = {}


def register(name: str, applies: Callable[[object], bool]) -> Callable[[Metric], Metric]:
    """Register ``fn`` under ``name``; ``applies(data)`` says which datasets it is for."""
    def wrap(fn: Metric) -> Metric:
        REGISTRY[name], _APPLIES[name] = fn, applies
        return fn
    return wrap


def applicable(data: object) -> List[str]:
    return [name for name, ok in _APPLIES.items() if ok(data)]


def evaluate(samples: torch.Tensor, data: object, names: Optional[List[str]] = None) -> Dict[str, float]:
    """Run the named metrics (default: all that apply to ``data``) and merge their dicts."""
    names = names or applicable(data)
    if not names:
        raise GanforgeError(f"no metric is available for data '{getattr(data, 'name', data)}' yet "
                            f"(image metrics are not implemented)")
    out: Dict[str, float] = {}
    for name in names:
        if name not in REGISTRY:
            raise GanforgeError(f"unknown metric '{name}'; available: {', '.join(sorted(REGISTRY))}")
        if not _APPLIES[name](data):
            raise GanforgeError(f"metric '{name}' does not apply to data '{getattr(data, 'name', data)}'")
        out.update(REGISTRY[name](samples, data))
    return out


from . import toy  # noqa: E402,F401  (registers the toy metrics)
