"""The registry: metric name (declared in :mod:`ganforge.metric_spec`) → function(samples, data) → dict."""

from __future__ import annotations

from typing import Callable, Dict, List

import torch

from ..metric_spec import BY_NAME

Metric = Callable[[torch.Tensor, object], Dict[str, float]]
REGISTRY: Dict[str, Metric] = {}
APPLIES: Dict[str, Callable[[object], bool]] = {}


def register(name: str, applies: Callable[[object], bool]) -> Callable[[Metric], Metric]:
    """Register ``fn`` under ``name``, which metric_spec declares; ``applies(data)`` says which datasets it is for."""
    if name not in BY_NAME:
        raise ValueError(f"metric '{name}' is not declared in ganforge.metric_spec.METRICS")

    def wrap(fn: Metric) -> Metric:
        REGISTRY[name], APPLIES[name] = fn, applies
        return fn
    return wrap


def applicable(data: object) -> List[str]:
    return [name for name, ok in APPLIES.items() if ok(data)]
