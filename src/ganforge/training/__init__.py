"""The one training loop for every GAN: k D-steps, then g G-steps, with logging, grids and checkpoints.

One *step* is one iteration of Goodfellow et al. (2014), Algorithm 1: ``d_steps`` discriminator
updates, each on a fresh minibatch of real data and noise, then ``g_steps`` generator updates on
fresh noise. An *epoch* is one pass of D over the real data (minibatches of ``batch_size``, the last
incomplete one dropped, reshuffled each epoch), so one epoch is ``(N // batch_size) / d_steps`` steps.

Where each part lives:

* :mod:`.step` — the step itself (Algorithm 1 and its stabilisers), over :class:`Nets`;
* :mod:`.state` — :class:`TrainState` (what a checkpoint holds) and save / roll back;
* :mod:`.duties` — the jobs around the loop (log, diagnostics, pictures, evaluation, checkpoints,
  budget and signals, the user's hook), one :class:`Duty` each;
* :mod:`.setup` — the run dir, data, models and distributed world, gathered into :class:`Training`;
* :mod:`.loop` — :func:`fit`, the loop that walks the steps and the duties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

from torch import nn

from ..checkpoint import write_atomic
from ..config import Config
from ..dist import setup as setup_world
from .context import Training
from .duties import Duty, standard_duties
from .loop import fit
from .setup import check_resume_config, default_run_dir, open_log, prepare
from .state import TrainState
from .step import GANStep, Nets, StepOut, cpu_has_native_bf16, rows_independent

__all__ = ["run", "fit", "prepare", "Training", "TrainState", "GANStep", "Nets", "StepOut", "Duty",
           "standard_duties", "check_resume_config", "default_run_dir", "cpu_has_native_bf16", "rows_independent"]


def run(config: Config, run_dir: Union[str, Path, None] = None, *, resume: bool = False,
        on_step: Optional[Callable[[int, nn.Module, nn.Module], None]] = None) -> Training:
    """Train G and D as ``config`` says, writing everything into ``run_dir``; return the finished
    :class:`Training` (its log closed, its lock released). :func:`ganforge.train` wraps it in a ``Run``."""
    world, device = setup_world(config.device, config.dist_timeout)
    try:
        t = prepare(config, run_dir, resume, world, device)
        try:
            open_log(t)
            fit(t, standard_duties(on_step))
            _final_picture(t)
            return t
        finally:
            if t.log is not None:
                t.log.close()
            if t.lock is not None:
                t.lock.release()
    finally:
        world.close()


def _final_picture(t: Training) -> None:
    """Copy the last picture to ``final.png`` (text: the last lines to ``final.txt``), beside config.yaml."""
    for suffix in (".png", ".txt"):
        last = t.run_dir / "samples" / f"step-{t.state.step:07d}{suffix}"
        if t.world.main and last.exists():
            write_atomic(t.run_dir / f"final{suffix}", lambda f, last=last: f.write(last.read_bytes()))
