"""Diagnostics that watch a run for the known GAN failures and say so once, with a concrete suggestion.

Each check reads what the loop already logs (one ``metrics.jsonl`` record per ``log.every`` steps, and
each evaluation) and fires only when its condition holds for ``diag_window`` records in a row:

* **D overpowers G** (BCE losses): mean D(x) > 0.99 and mean D(G(z)) < 0.01.
* **G's loss explodes** (BCE losses): G's loss above max(10, 10 × the median of its earlier values).
* **Mode collapse**: the generated batch is far less diverse than the real one — mean pairwise distance
  of generated samples below 25% of the real batch's, checked only after ``warmup`` log records (an
  untrained G's samples are all alike) — or, at an evaluation, fewer modes covered than the best
  evaluation so far by 2 or more.

The state is saved in checkpoints (:meth:`Diagnostics.state_dict`), so a resumed run says what an
uninterrupted one would, once.

NaN/Inf in a loss or weight is handled by the loop itself (``on_nan``: rollback or stop).
"""

from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Tuple

import torch

BCE = ("nonsaturating", "minimax")

SUGGEST = {
    "d_overpowers_g": "D overpowers G (mean D(x) {d_real:.3f}, mean D(G(z)) {d_fake:.3f} for {n} log intervals): "
                      "G gets no useful gradient; try a lower optim.lr_d, label_smoothing: 0.1, instance_noise: 0.1, "
                      "model.d_dropout: 0.3, or r1: 1",
    "g_loss_explodes": "G's loss is exploding ({g_loss:.3g}, was around {median:.3g}) for {n} log intervals: try a "
                       "lower optim.lr_g / lr_d, grad_clip: 10, spectral_norm: true, or loss: hinge",
    "low_diversity": "mode collapse suspected: generated samples are {ratio:.0%} as diverse as real ones (mean "
                     "pairwise distance) for {n} log intervals; try PacGAN (model.d_pack: 2), minibatch statistics "
                     "in D (model.d_input: sample+stats), an EMA of G (ema: 0.999), or r1: 1",
    "modes_dropped": "mode collapse: {now} of {total} modes covered, down from {best} at an earlier evaluation; "
                     "checkpoints/best.pt holds the better generator; try model.d_pack: 2, ema: 0.999 or lower "
                     "learning rates",
}


@torch.no_grad()
def diversity_ratio(real: torch.Tensor, fake: torch.Tensor, max_n: int = 256) -> float:
    """Mean pairwise distance of the fake batch over that of the real batch (≈ 1 when alike, 0 collapsed)."""
    r = real[:max_n].flatten(1).float()
    f = fake[:max_n].flatten(1).float()
    dr = torch.pdist(r).mean()
    return float(torch.pdist(f).mean() / dr) if dr > 0 else float("nan")


class Diagnostics:
    def __init__(self, loss: str, window: int, enabled: bool = True, warmup: int = 20) -> None:
        self.loss, self.window, self.enabled, self.warmup = loss, window, enabled, warmup
        self.streak: Dict[str, int] = {}
        self.said: List[str] = []
        self.g_history: List[float] = []
        self.best_modes: Optional[int] = None
        self.records = 0

    def state_dict(self) -> Dict:
        return {"streak": dict(self.streak), "said": list(self.said), "g_history": list(self.g_history),
                "best_modes": self.best_modes, "records": self.records}

    def load_state_dict(self, state: Dict) -> None:
        self.streak, self.said = dict(state["streak"]), list(state["said"])
        self.g_history, self.best_modes, self.records = list(state["g_history"]), state["best_modes"], state["records"]

    def _hold(self, name: str, condition: bool) -> bool:
        self.streak[name] = self.streak.get(name, 0) + 1 if condition else 0
        return self.streak[name] >= self.window and name not in self.said

    def _fire(self, name: str, **values) -> Tuple[str, str]:
        self.said.append(name)
        return name, SUGGEST[name].format(n=self.window, **values)

    def on_log(self, record: Dict[str, float], diversity: Optional[float] = None) -> List[Tuple[str, str]]:
        """Findings (event name, message) for one metrics record; each is reported once per run."""
        if not self.enabled:
            return []
        self.records += 1
        out = []
        if self.loss in BCE:
            if self._hold("d_overpowers_g", record["d_real"] > 0.99 and record["d_fake"] < 0.01):
                out.append(self._fire("d_overpowers_g", d_real=record["d_real"], d_fake=record["d_fake"]))
            median = statistics.median(self.g_history) if len(self.g_history) >= self.window else None
            exploding = median is not None and record["g_loss"] > max(10.0, 10 * abs(median))
            if self._hold("g_loss_explodes", exploding):
                out.append(self._fire("g_loss_explodes", g_loss=record["g_loss"], median=median))
            if not exploding:
                self.g_history.append(record["g_loss"])
        if diversity is not None and self._hold("low_diversity", self.records > self.warmup and diversity < 0.25):
            out.append(self._fire("low_diversity", ratio=diversity))
        return out

    def on_eval(self, found: Dict[str, float]) -> List[Tuple[str, str]]:
        if not self.enabled or "modes_covered" not in found:
            return []
        now = int(found["modes_covered"])
        best = self.best_modes
        self.best_modes = now if best is None else max(best, now)
        if best is not None and now <= best - 2 and "modes_dropped" not in self.said:
            return [self._fire("modes_dropped", now=now, best=best, total=int(found.get("modes_total", best)))]
        return []
