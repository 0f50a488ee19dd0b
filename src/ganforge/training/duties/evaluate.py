"""Evaluation during training: score samples of the fixed evaluation noise, log the numbers, keep
``checkpoints/best.pt`` when they are the best so far, and let the diagnostics see them.

Images are scored by :class:`EvaluateImages` (``eval.n_train`` samples, ``eval.train_metrics``, at
``eval.every`` or, with ``auto``, at every checkpoint and at the end); toy data is scored with each
picture (:class:`ganforge.training.duties.grids.Grids`), both through :func:`score`.
"""

from __future__ import annotations

from typing import Dict

import torch

from ...metric_spec import rank
from ...metrics import APPLIES, eval_labels, evaluate, parse_names
from ...models import noise
from ..state import rng_state, save
from .base import Duty


def score(t, x: torch.Tensor, rngs: list) -> Dict[str, float]:
    """Score generated samples ``x`` (rank 0; ``rngs``: every rank's RNG state, for best.pt)."""
    s, cfg = t.state, t.cfg
    names = None if t.toy else [n for n in parse_names(cfg.eval.train_metrics) if APPLIES[n](t.ref)]
    found = evaluate(x, t.ref, names)  # eval.train_metrics that apply to the data (stacked-mnist: no 'modes')
    t.log.record({"step": s.step, "epoch": s.epoch, "kind": "eval", **found})
    t.final_metrics = found
    ranked = rank(found, cfg.eval.best)
    if s.best_score is None or ranked > tuple(s.best_score):  # NaN scores never compare greater
        s.best_score = list(ranked)
        save(s, t.world, t.run_dir / "checkpoints", cfg.log.keep_checkpoints, name="best.pt", metrics=found,
             rngs=rngs)
    for event, message in s.diagnostics.on_eval(found):
        t.log.event(s.step, event, message)
    return found


class EvaluateImages(Duty):
    """The cheap in-training evaluation of image runs."""

    def after_step(self, t, out):
        if t.image_eval and self._due(t):
            self.evaluate(t)

    def finish(self, t) -> None:
        step = t.state.step
        if t.image_eval and step > 0 and t.cfg.eval.every == "auto" and t.saved_step != step:
            self.evaluate(t)  # stopped by time or signal: score what is being saved

    @staticmethod
    def _due(t) -> bool:
        every = t.cfg.eval.every
        if every == "auto":
            return t.last or t.due(t.cfg.log.checkpoint_every)
        return t.due(every)

    @staticmethod
    def evaluate(t) -> None:
        """``eval.n_train`` samples of the fixed evaluation noise (and, conditional, seeded class labels in the
        reference's class proportions: :func:`metrics.eval_labels`), scored."""
        rngs = t.world.gather(rng_state())  # collective: every rank comes here
        if not t.world.main:
            return
        cfg, nets, n = t.cfg, t.state.nets, t.cfg.eval.n_train
        net = nets.G_eval
        net.eval()
        try:
            with torch.no_grad():
                z = noise(cfg.model, n, t.device, torch.Generator().manual_seed(cfg.eval.seed))
                y = eval_labels(n, t.n_classes, t.ref, cfg.eval.seed).to(t.device) if t.n_classes else None
                x = torch.cat([t.step_fn.generate(net, z[i: i + 500], y[i: i + 500] if y is not None else None)
                               .float().cpu() for i in range(0, n, 500)])
            score(t, x, rngs)
        finally:
            nets.G.train()
