"""The training state: everything a checkpoint holds, and the three things done with it — save it,
resume from it, roll back to it.

:class:`TrainState` is one dataclass: the nets and their optimisers and EMA, the position in the data,
the step, the RNGs (read when saved), the diagnostics, the best evaluation so far, the rollback count
and the elapsed time. ``state_dict()`` and ``load_state_dict()`` are its only way in and out, so a
resumed or rolled-back run continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoint import latest_checkpoint, load_latest_good, save_checkpoint
from ..config import Config, OptimConfig
from ..diagnostics import Diagnostics
from ..dist import World
from ..errors import DivergedError, GanforgeError
from .step import Nets


@dataclass
class TrainState:
    """What a checkpoint holds. ``meta`` is what describes the run rather than its progress (config,
    data shape, classes, world size); it is saved for readers (``ganforge sample``) and never loaded."""

    nets: Nets
    batches: Any  # a stream from ganforge.data.batches: its ``position`` is the data order's progress
    diagnostics: Diagnostics
    fixed_z: torch.Tensor  # the noise of the sample grids, the same across resumes
    acc: torch.Tensor  # sums of the logged numbers since the last metrics line (on the device)
    meta: Dict[str, Any]
    step: int = 0
    acc_n: int = 0
    elapsed_before: float = 0.0  # seconds trained by earlier invocations of this run
    rollbacks: int = 0
    best_score: Optional[list] = None  # the best evaluation so far, as duties.evaluate.rank() orders them
    ada_p: float = 0.0  # ADA's augmentation probability (ada_target > 0)
    ada_acc: Optional[torch.Tensor] = None  # ADA: sum of E[sign(D(x_real))] and steps since its last adjustment
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)  # clock() when this invocation's loop began

    def start_clock(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier invocations included."""
        return self.elapsed_before + (self.clock() - self.started)

    def state_dict(self, rngs: List[Dict[str, Any]]) -> Dict[str, Any]:
        """The checkpoint's contents; ``rngs`` are every rank's RNG states, in rank order."""
        n = self.nets
        m = self.meta
        return {
            "world_size": m["world_size"], "rng_per_rank": rngs,
            "step": self.step, "position": self.batches.position, "elapsed": self.elapsed(),
            "config": m["config"], "data_shape": m["data_shape"], "n_classes": m["n_classes"],
            "classes": m["classes"], **{k: m[k] for k in ("alphabet", "sample_rate") if k in m},  # text, audio
            "G": n.G.state_dict(), "D": n.D.state_dict(), "opt_g": n.opt_g.state_dict(), "opt_d": n.opt_d.state_dict(),
            **({"G_ema": n.G_ema.state_dict()} if n.G_ema is not None else {}),
            "fixed_z": self.fixed_z.cpu(), "acc": self.acc.cpu(), "acc_n": self.acc_n, "rng": rngs[0],
            "rollbacks": self.rollbacks, "best_score": self.best_score, "diagnostics": self.diagnostics.state_dict(),
            **({"ada_p": self.ada_p, "ada_acc": self.ada_acc.cpu()} if self.ada_acc is not None else {}),  # ADA on
        }

    def load_state_dict(self, state: Dict[str, Any], path: Path, rank: int = 0) -> None:
        """Put every piece of training state back as checkpoint ``state`` (read from ``path``) holds,
        this rank's RNGs included."""
        n = self.nets
        try:
            n.G.load_state_dict(state["G"])
            n.D.load_state_dict(state["D"])
            n.opt_g.load_state_dict(state["opt_g"])
            n.opt_d.load_state_dict(state["opt_d"])
            if n.G_ema is not None:
                n.G_ema.load_state_dict(state["G_ema"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise GanforgeError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
        device = self.acc.device
        self.step, self.batches.position = int(state["step"]), int(state["position"])
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.fixed_z = state["fixed_z"].to(device)
        self.acc, self.acc_n = state["acc"].to(device), int(state["acc_n"])
        self.rollbacks = int(state.get("rollbacks", 0))
        self.best_score = state.get("best_score")
        self.ada_p = float(state.get("ada_p", 0.0))
        self.ada_acc = state["ada_acc"].to(device) if "ada_acc" in state else None
        if "diagnostics" in state:
            self.diagnostics.load_state_dict(state["diagnostics"])
        set_rng_state(state["rng"] if int(state.get("world_size", 1)) == 1 else state["rng_per_rank"][rank])

    @property
    def epoch(self) -> float:
        """Passes over the data so far (D's batches / batches per epoch)."""
        return round(self.batches.position / self.batches.per_epoch, 4)


def save(state: TrainState, world: World, ckpt_dir: Path, keep: int, name: Optional[str] = None,
         metrics: Optional[Dict[str, float]] = None, rngs: Optional[list] = None) -> Optional[Path]:
    """Write a checkpoint of ``state`` (rank 0, with every rank's RNG state); ``name`` (``best.pt``)
    instead of ``step-N.pt``. Without ``rngs`` this is collective: every rank calls it and all wait
    until the file is on disk."""
    collective = rngs is None
    rngs = world.gather(rng_state()) if collective else rngs
    path = save_checkpoint(state.state_dict(rngs), ckpt_dir, state.step, keep, name=name, metrics=metrics) \
        if world.main else None
    if collective:
        world.barrier()
    return path


def roll_back(state: TrainState, cfg: Config, world: World, ckpt_dir: Path, why: str) -> Tuple[Dict[str, Any], str]:
    """NaN/Inf: put ``state`` back as the last good checkpoint with lower learning rates and return the
    event to log and the sentence to say; raise DivergedError when ``on_nan`` is stop or the rollbacks
    are used up."""
    world.barrier()
    good = latest_checkpoint(ckpt_dir)
    if cfg.on_nan == "stop" or state.rollbacks >= cfg.nan_max_rollbacks or good is None:
        tried = f" after {state.rollbacks} rollback(s)" if cfg.on_nan == "rollback" else ""
        raise DivergedError(f"training diverged ({why} at step {state.step}){tried}; the last good checkpoint is "
                            f"{good}; try lower learning rates (optim.lr_g/lr_d), grad_clip, r1 or spectral_norm")
    bad_step, count = state.step, state.rollbacks + 1
    path, saved, _ = load_latest_good(ckpt_dir)
    state.load_state_dict(saved, path, world.rank)
    state.rollbacks = count
    scale = cfg.nan_lr_factor ** count
    set_learning_rates(state.nets, cfg.optim, scale)
    return {"step": state.step, "kind": "event", "event": "nan_rollback", "why": why, "at_step": bad_step,
            "rollback": count, "lr_g": cfg.optim.lr_g * scale, "lr_d": cfg.optim.lr_d * scale}, \
        (f"{why} at step {bad_step}: rolled back to {path.name}, learning rates x{scale:g} "
         f"(rollback {count} of at most {cfg.nan_max_rollbacks})")


def set_learning_rates(nets: Nets, optim: OptimConfig, scale: float) -> None:
    """Every param group of G's and D's optimisers at the config's rate (``optim.lr_g``/``lr_d``) × ``scale``."""
    for opt, lr in ((nets.opt_g, optim.lr_g), (nets.opt_d, optim.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * scale


def finite(*modules: nn.Module) -> bool:
    """Every parameter of every module is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for m in modules for p in m.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
