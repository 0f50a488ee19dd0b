"""Pictures: the fixed-noise sample grid (images), the spectrogram grid (audio), the sample plot (toy data) or
the fixed-noise lines (text, ``step-N.txt``) every ``log.sample_every`` and at the end; toy runs with
``eval.every: auto`` are scored with each picture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ...models import grid_labels, noise
from ...report import save_audio_grid, save_grid, save_toy_plot, write_lines
from ..state import rng_state
from .base import Duty
from .evaluate import score

_SHOWN = ("w1", "ks", "hq_fraction", "modes_covered")


class Grids(Duty):
    def after_step(self, t, out):
        if t.due(t.cfg.log.sample_every):
            self.draw(t)

    def finish(self, t) -> None:
        if t.state.step > 0 and not t.world.broadcast(self.path(t).exists()):
            self.draw(t)

    @staticmethod
    def path(t) -> Path:
        suffix = ".txt" if getattr(t.data, "kind", "") == "text" else ".png"
        return t.run_dir / "samples" / f"step-{t.state.step:07d}{suffix}"

    def draw(self, t) -> Optional[Path]:
        toy_eval = t.toy and t.cfg.eval.every == "auto"
        rngs = t.world.gather(rng_state()) if toy_eval else []  # collective: every rank comes here
        if not t.world.main:
            return None
        cfg, s, path = t.cfg, t.state, self.path(t)
        net = s.nets.G_eval
        net.eval()
        try:
            with torch.no_grad():
                if path.suffix == ".txt":
                    write_lines(t.data.decode(t.step_fn.generate(net, s.fixed_z, None).float().cpu()), path)
                    return path
                if getattr(t.data, "kind", "") == "audio":
                    y = grid_labels(s.fixed_z.shape[0], t.n_classes, t.device)
                    names = [t.state.meta["classes"][k] for k in y.tolist()] if y is not None else None
                    save_audio_grid(t.step_fn.generate(net, s.fixed_z, y), t.data.rate, path, names)
                    return path
                if not t.toy:
                    y = grid_labels(s.fixed_z.shape[0], t.n_classes, t.device)
                    save_grid(t.step_fn.generate(net, s.fixed_z, y), path)
                else:
                    z = noise(cfg.model, cfg.eval.n, t.device, torch.Generator().manual_seed(cfg.eval.seed))
                    x = net(z).float().cpu()
                    title = f"step {s.step}"
                    if toy_eval:
                        found = score(t, x, rngs)
                        title += ": " + ", ".join(f"{k} {found[k]:.4g}" for k in _SHOWN if k in found)
                    save_toy_plot(x, t.data, path, title=title, d_curve=d_curve(s.nets.D, t.data, cfg, t.device))
        finally:
            s.nets.G.train()
        t.log.image("samples", path, s.step)
        return path


def d_curve(D, data, cfg, device: torch.device):
    """D's probability as a function of x, for 1-D data where D judges single samples (with a
    ``sample+stats`` D: against the statistics of a real batch); else None."""
    if data.dim != 1 or cfg.model.d_input == "moments" or cfg.model.d_pack != 1:
        return None
    m, sd = data.means[:, 0], data.stds
    xs = torch.linspace((m - 4 * sd).min().item(), (m + 4 * sd).max().item(), 300)
    ref = data.sample(cfg.train.batch_size, generator=torch.Generator().manual_seed(cfg.eval.seed)).to(device)
    D.eval()
    try:
        with torch.no_grad():
            logits = D(xs[:, None].to(device), stats_of=ref) if cfg.model.d_input == "sample+stats" \
                else D(xs[:, None].to(device))
            return xs, torch.sigmoid(logits.float().cpu())
    finally:
        D.train()
