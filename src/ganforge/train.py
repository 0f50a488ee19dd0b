"""The one training loop for every GAN: k D-steps, then g G-steps, with logging, grids and checkpoints.

One *step* is one iteration of Goodfellow et al. (2014), Algorithm 1: ``d_steps`` discriminator
updates, each on a fresh minibatch of real data and noise, then ``g_steps`` generator updates on
fresh noise. An *epoch* is one pass of D over the real data (minibatches of ``batch_size``, the last
incomplete one dropped, reshuffled each epoch), so one epoch is ``(N // batch_size) / d_steps`` steps.
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Union

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .api import Run
from .augment import diff_augment, real_augment
from .checkpoint import latest_checkpoint, load_latest_good, save_checkpoint, write_atomic
from .config import Config, build_config, config_warnings, load_run_config, parse_interval, save_yaml
from .data import FolderImages, Mixture, load_dataset
from .dist import World, ddp, setup
from .diagnostics import Diagnostics, diversity_ratio
from .metrics import evaluate, parse_names, reference
from .errors import DivergedError, GanforgeError
from .losses import build_loss, gradient_penalty, r1_penalty
from .models import build_discriminator, build_generator, class_labels, grid_labels, noise, spectral_normalise
from .report import save_grid, save_toy_plot
from .tblog import TensorBoardLog

# Config keys that may differ on --resume: budgets, logging, where it runs. Anything else would
# change what is being trained, so a resumed run would no longer be the run it continues.
RESUMABLE_KEYS = ("description", "device", "train.epochs", "train.steps", "train.max_seconds", "train.fast",
                  "train.compile", "train.amp",
                  "data.root", "data.download", "data.workers", "log.", "eval.", "diagnostics", "diag_window")

_METRIC_KEYS = ("d_loss", "g_loss", "d_real", "d_fake")


class BatchStream:
    """Minibatch indices over N items: a fresh seeded permutation per epoch, the last partial batch dropped.

    The order is a pure function of (seed, epoch), so ``position`` (batches consumed) is all a
    checkpoint needs to continue the exact same data order.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device, position: int = 0) -> None:
        if batch_size > n:
            raise GanforgeError(f"train.batch_size ({batch_size}) is larger than the dataset ({n} items)")
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self.position = position
        self._epoch, self._perm = -1, None

    def next(self) -> torch.Tensor:
        epoch, i = divmod(self.position, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=gen).to(self.device), epoch
        self.position += 1
        return self._perm[i * self.batch_size : (i + 1) * self.batch_size]


class _TensorBatches:
    """Real minibatches of a dataset held as one tensor on the device. In a world of ``world`` processes
    the stream draws global batches of ``batch_size × world`` and this rank takes its slice."""

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.x = data.x.to(device)
        self.y = data.y.to(device) if data.y is not None else None
        self.labels: Optional[torch.Tensor] = None  # the labels of the last batch (labelled data)
        self.order = BatchStream(len(data), batch_size * world, seed, device)
        self.per_epoch = self.order.per_epoch
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)

    position = property(lambda self: self.order.position,
                        lambda self, v: setattr(self.order, "position", v))

    def next(self) -> torch.Tensor:
        idx = self.order.next()[self.shard]
        if self.y is not None:
            self.labels = self.y[idx]
        return self.x[idx]


class _LoaderBatches:
    """Real minibatches of a folder too large to hold, decoded by a DataLoader's worker processes in the
    same order as :class:`BatchStream` gives (so resume is exact). ``position`` counts the batches
    handed to the loop, not those the workers have prefetched; setting it restarts the loader there."""

    def __init__(self, data, batch_size: int, seed: int, device: torch.device, workers: int,
                 rank: int = 0, world: int = 1) -> None:
        self.data, self.seed, self.device, self.workers = data, seed, device, workers
        self.global_batch = batch_size * world
        self.per_epoch = BatchStream(len(data), self.global_batch, seed, torch.device("cpu")).per_epoch
        self.shard = slice(rank * batch_size, (rank + 1) * batch_size)
        self._position, self._it = 0, None
        self.labels: Optional[torch.Tensor] = None

    @property
    def position(self) -> int:
        return self._position

    @position.setter
    def position(self, value: int) -> None:
        self._position, self._it = value, None

    def _indices(self, start: int) -> Iterator[list]:
        order = BatchStream(len(self.data), self.global_batch, self.seed, torch.device("cpu"), position=start)
        while True:
            yield order.next()[self.shard].tolist()

    def next(self) -> torch.Tensor:
        if self._it is None:
            dataset = _WithLabels(self.data) if self.data.y is not None else self.data
            loader = torch.utils.data.DataLoader(
                dataset, batch_sampler=self._indices(self._position), num_workers=self.workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers else None)
            self._it = iter(loader)
        self._position += 1
        batch = next(self._it)
        if self.data.y is not None:
            batch, labels = batch
            self.labels = labels.to(self.device, non_blocking=True)
        return batch.to(self.device, non_blocking=True)


class _WithLabels(torch.utils.data.Dataset):
    def __init__(self, data) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.data[i], self.data.y[i]


class _ToyBatches:
    """Fresh samples of a toy distribution for every batch (drawn from torch's RNG, so resume is exact);
    ``data.samples_per_epoch`` real samples make an epoch."""

    def __init__(self, mixture: Mixture, batch_size: int, samples_per_epoch: int, device: torch.device) -> None:
        self.mixture, self.batch_size, self.device = mixture, batch_size, device
        self.per_epoch = max(1, samples_per_epoch // batch_size)
        self.position = 0

    def next(self) -> torch.Tensor:
        self.position += 1
        return self.mixture.sample(self.batch_size).to(self.device)


def _make_optimizer(cfg: Config, params, lr: float) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay)
    params = list(params)
    if cfg.train.fast:  # one fused kernel per step instead of a handful of foreach ops (torch >= 2.4 on CPU)
        try:
            return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def rows_independent(cfg: Config, D: nn.Module) -> bool:
    """Whether D's logit for a sample depends on that sample alone (and on no random draw per call), so
    real and fake can go through D in one forward with the same arithmetic as two: not with BatchNorm
    (batch statistics), dropout or DiffAugment (random draws per call), spectral norm (a power iteration
    per call), or D inputs that see minibatch statistics."""
    coupled = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return (cfg.model.d_input == "sample" and not cfg.spectral_norm and not cfg.diffaugment.strip()
            and not any(isinstance(m, coupled) for m in D.modules()))


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16/AMX, as oneDNN reports it)."""
    return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())


def _amp_context(cfg: Config, device: torch.device, say: bool) -> Callable[[], Any]:
    """The autocast context of G's and D's forwards for ``cfg.train.amp`` (bf16), or a no-op."""
    from contextlib import nullcontext

    if cfg.train.amp != "bf16":
        return nullcontext
    if device.type == "cpu" and not cpu_has_native_bf16():
        if say:
            print("ganforge: warning: train.amp bf16: this CPU has no native bf16 (AVX512-BF16/AMX), where "
                  "bf16 autocast runs slower than fp32; training in fp32", file=sys.stderr)
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def _rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy(), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _changed_keys(a: Dict[str, Any], b: Dict[str, Any], prefix: str = "") -> Iterator[str]:
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _changed_keys(va, vb, prefix + k + ".")
        elif va != vb:
            yield prefix + k


def check_resume_config(saved: Config, requested: Config) -> None:
    """Refuse a resume whose config changes anything but budgets, logging and device."""
    for key in _changed_keys(saved.to_dict(), requested.to_dict()):
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS):
            raise GanforgeError(f"--resume cannot change '{key}' (it changes what is trained); "
                                f"start a new run dir instead")


def default_run_dir(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{cfg.preset}-{stamp}"
    i = 1
    while path.exists():
        i += 1
        path = Path("runs") / f"{cfg.preset}-{stamp}-{i}"
    return path


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"run dir {run_dir} is a file, not a directory")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise GanforgeError(f"run dir {run_dir} is not empty: use --resume to continue it, or choose another --run-dir")


class _StopFlag:
    """SIGINT/SIGTERM ask the loop to stop after the current step; a second SIGINT stops at once."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    def handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum


@contextmanager
def _signals_to(flag: _StopFlag):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, flag.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _due(interval: str, step: int, epochs_before: int, epochs_after: int) -> bool:
    n, unit = parse_interval(interval)
    if unit == "step":
        return step % n == 0
    return epochs_after // n > epochs_before // n


def train(config: Config, run_dir: Union[str, Path, None] = None, *, resume: bool = False,
          on_step: Optional[Callable[[int, nn.Module, nn.Module], None]] = None) -> Run:
    """Train G and D as ``config`` says, writing everything into ``run_dir``; return the :class:`Run`.

    ``resume=True`` continues ``run_dir`` from its latest checkpoint; ``config`` may differ from the
    run's saved config only in budgets, logging and device. ``on_step(step, G, D)`` is called after
    every step (for inspection or experiments; it runs inside the loop, so keep it cheap).
    """
    world, device = setup(config.device)
    try:
        return _train(config, run_dir, resume, on_step, world, device)
    finally:
        world.close()


def _train(cfg: Config, run_dir: Union[str, Path, None], resume: bool,
           on_step: Optional[Callable[[int, nn.Module, nn.Module], None]], world: World, device: torch.device) -> Run:
    say = world.main  # only rank 0 prints and writes
    if cfg.sync_bn and world.size > 1 and device.type != "cuda":
        raise GanforgeError("sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel); drop sync_bn on CPU")
    if resume:
        if run_dir is None:
            raise GanforgeError("--resume needs --run-dir naming the run to continue")
        run_dir = Path(run_dir)
        saved = load_run_config(run_dir)  # no config.yaml: nothing to resume
        world.barrier()
        if say:
            for stale in (run_dir / "checkpoints").glob(".*.tmp"):  # a write interrupted by a kill
                stale.unlink()
        if latest_checkpoint(run_dir / "checkpoints") is None:
            # Killed before its first checkpoint: nothing to continue, so start it again from step 0.
            if say:
                print(f"ganforge: warning: {run_dir} has no checkpoint yet; starting it from step 0", file=sys.stderr)
            state = None
            check_resume_config(saved, cfg)
            if say:
                _truncate_metrics(run_dir / "metrics.jsonl", 0)
        else:
            ckpt_path, state, skipped = load_latest_good(run_dir / "checkpoints")
            for problem in skipped if say else ():
                print(f"ganforge: warning: {problem}; resuming from {ckpt_path} instead", file=sys.stderr)
            check_resume_config(_saved_config(state, ckpt_path), cfg)
            if int(state.get("world_size", 1)) != world.size:
                raise GanforgeError(f"{run_dir} was trained by {state.get('world_size', 1)} process(es); resume it "
                                    f"with as many (this is {world.size}), so its data order and batch stay the same")
    else:
        run_dir = Path(world.broadcast(str(run_dir) if run_dir is not None else str(default_run_dir(cfg))))
        _check_new_run_dir(run_dir)
        state = None

    data = load_dataset(cfg.data, verbose=say)  # bad data fails here, before anything is written
    toy = isinstance(data, Mixture)
    ref = data if toy else None  # what evaluations score against (images: features of the real data)
    if not toy and cfg.eval.every != "off" and say:
        try:
            ref = reference(data, cfg.eval, verbose=True)
        except GanforgeError as e:
            if cfg.eval.every != "auto":
                raise
            print(f"ganforge: note: {e}; training without image metrics", file=sys.stderr)
    image_eval = world.broadcast(ref is not None and not toy)
    n_classes = _n_classes(cfg, data)
    world.barrier()  # every rank has checked the run dir before rank 0 writes into it
    _seed_everything(cfg.seed)  # the same initial weights on every rank
    G = build_generator(cfg.model, data.shape, n_classes).to(device)
    D = build_discriminator(cfg.model, data.shape, n_classes)
    D = (spectral_normalise(D) if cfg.spectral_norm else D).to(device)
    if world.size > 1:
        _seed_everything(cfg.seed + 7919 * world.rank)  # different noise (and augmentation) on each rank
        if cfg.sync_bn:
            G, D = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
    # What trains: G and D, each wrapped in DistributedDataParallel in a world of more than one. D's
    # wrapper is used in D's step; G's step goes through the plain D (its weights frozen, so DDP would
    # wait for gradients that never come) and, under DDP, G's no-grad forwards use the plain G. Buffers (BatchNorm
    # statistics) stay per process; rank 0's are the ones saved.
    conv = cfg.train.fast and len(data.shape) == 3 and cfg.model.arch == "dcgan"
    if conv:  # oneDNN's convolutions run faster on NHWC; the weights stay the same numbers
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_train, D_train = (ddp(G, device), ddp(D, device)) if world.size > 1 else (G, D)
    D_plain = D  # G's step: through D itself, not its DDP wrapper
    if cfg.train.compile:
        G_train, D_train, D_plain = torch.compile(G_train), torch.compile(D_train), torch.compile(D)
    one_pass = cfg.train.fast and rows_independent(cfg, D)  # D judges real and fake in one forward
    if cfg.train.fast and device.type == "cuda":  # TF32 tensor-core matmuls and tuned cuDNN algorithms
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    autocast = _amp_context(cfg, device, say)
    opt_g = _make_optimizer(cfg, G.parameters(), cfg.optim.lr_g)
    opt_d = _make_optimizer(cfg, D.parameters(), cfg.optim.lr_d)
    lp = cfg.loss_params
    loss = build_loss(cfg.loss, lp.lsgan_a, lp.lsgan_b, lp.lsgan_c, cfg.label_smoothing)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema > 0 else None
    if toy:
        stream = _ToyBatches(data, cfg.train.batch_size, cfg.data.samples_per_epoch, device)
    elif isinstance(data, FolderImages):
        stream = _LoaderBatches(data, cfg.train.batch_size, cfg.seed, device, cfg.data.workers, world.rank, world.size)
    else:
        stream = _TensorBatches(data, cfg.train.batch_size, cfg.seed, device, world.rank, world.size)
    fixed_z = noise(cfg.model, cfg.log.n_samples, device, torch.Generator().manual_seed(cfg.seed + 1))
    # conditional: the grid cycles through the classes (grid_labels); evaluations use seeded labels
    cond = (lambda net, z, y: net(z, y)) if n_classes else (lambda net, z, y: net(z))
    step, elapsed_before = 0, 0.0
    acc, acc_n = torch.zeros(len(_METRIC_KEYS), device=device), 0

    diag = Diagnostics(cfg.loss, cfg.diag_window, cfg.diagnostics)
    rollbacks = 0
    best_score: Optional[list] = None  # the best evaluation so far, as _score() ranks it

    def restore(state: Dict[str, Any], path: Path) -> None:
        """Put every piece of training state back as the checkpoint ``state`` (read from ``path``) holds."""
        nonlocal step, elapsed_before, fixed_z, acc, acc_n, rollbacks, best_score
        try:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            if G_ema is not None:
                G_ema.load_state_dict(state["G_ema"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise GanforgeError(f"checkpoint {path} does not fit this model: {str(e).splitlines()[0]}") from None
        step, stream.position = int(state["step"]), int(state["position"])
        elapsed_before = float(state.get("elapsed", 0.0))
        fixed_z = state["fixed_z"].to(device)
        acc, acc_n = state["acc"].to(device), int(state["acc_n"])
        rollbacks = int(state.get("rollbacks", 0))
        best_score = state.get("best_score")
        if "diagnostics" in state:
            diag.load_state_dict(state["diagnostics"])
        _set_rng_state(state["rng"] if world.size == 1 else state["rng_per_rank"][world.rank])
        if say:
            _truncate_metrics(run_dir / "metrics.jsonl", step)

    if state is not None:
        restore(state, ckpt_path)

    if say:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")
        if getattr(data, "info", None):
            write_atomic(run_dir / "data.json", lambda f: f.write(json.dumps(data.info, indent=1).encode()))
        if not (run_dir / "samples" / "real.png").exists():
            if toy:
                real = data.sample(cfg.eval.n, generator=torch.Generator().manual_seed(cfg.eval.seed))
                save_toy_plot(real, data, run_dir / "samples" / "real.png", title="real samples", label="real")
            else:
                shown = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + 2))
                save_grid(data.take(shown[: cfg.log.n_samples]), run_dir / "samples" / "real.png")
    warned = config_warnings(cfg)
    for text in warned if say and state is None else ():
        print(f"ganforge: warning: {text}", file=sys.stderr)

    total = cfg.train.steps
    if total is None and cfg.train.epochs is not None:
        total = math.ceil(cfg.train.epochs * stream.per_epoch / cfg.d_steps)
    run = Run(run_dir, cfg, step, stream.position / stream.per_epoch, elapsed_before, rank=world.rank)

    def training_state(rngs: list) -> Dict[str, Any]:
        return {
            "world_size": world.size, "rng_per_rank": rngs,
            "step": step, "position": stream.position, "elapsed": elapsed_before + (time.monotonic() - t0),
            "config": cfg.to_dict(), "data_shape": list(data.shape), "n_classes": n_classes,
            "classes": _class_names(data, n_classes),
            "G": G.state_dict(), "D": D.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            **({"G_ema": G_ema.state_dict()} if G_ema is not None else {}),
            "fixed_z": fixed_z.cpu(), "acc": acc.cpu(), "acc_n": acc_n, "rng": rngs[0], "rollbacks": rollbacks,
            "best_score": best_score, "diagnostics": diag.state_dict(),
        }

    def checkpoint() -> Optional[Path]:
        """Rank 0 writes the checkpoint (with every rank's RNG state); all ranks wait until it is on disk."""
        rngs = world.gather(_rng_state())
        path = save_checkpoint(training_state(rngs), run_dir / "checkpoints", step, cfg.log.keep_checkpoints) \
            if say else None
        world.barrier()
        return path

    def assess(x: torch.Tensor, rngs: list) -> Dict[str, float]:
        """Score generated samples ``x`` (rank 0): log them, keep ``checkpoints/best.pt`` when they are the
        best so far, and let the diagnostics look at them."""
        nonlocal best_score
        found = evaluate(x, ref, None if toy else parse_names(cfg.eval.train_metrics))
        log_line({"step": step, "epoch": round(stream.position / stream.per_epoch, 4), "kind": "eval", **found})
        run.final_metrics = found
        score = _score(found, cfg.eval.best)
        if best_score is None or score > tuple(best_score):  # NaN scores never compare greater
            best_score = list(score)
            save_checkpoint(training_state(rngs), run_dir / "checkpoints", step, cfg.log.keep_checkpoints,
                            name="best.pt", metrics=found)
        for event, message in diag.on_eval(found):
            report(event, message)
        return found

    def evaluate_images() -> None:
        """The cheap in-training evaluation: ``eval.n_train`` samples of the fixed evaluation noise."""
        rngs = world.gather(_rng_state())  # collective: every rank comes here
        if not say:
            return
        net = G_ema if G_ema is not None else G
        net.eval()
        try:
            with torch.no_grad():
                z = noise(cfg.model, cfg.eval.n_train, device, torch.Generator().manual_seed(cfg.eval.seed))
                y = class_labels(cfg.eval.n_train, n_classes, cfg.eval.seed).to(device) if n_classes else None
                x = torch.cat([cond(net, z[i : i + 500], y[i : i + 500] if y is not None else None).float().cpu()
                               for i in range(0, z.shape[0], 500)])
            assess(x, rngs)
        finally:
            G.train()

    def eval_due(epochs_before: int, epochs_after: int, last: bool) -> bool:
        if not image_eval:
            return False
        if cfg.eval.every == "auto":
            return last or _due(cfg.log.checkpoint_every, step, epochs_before, epochs_after)
        return _due(cfg.eval.every, step, epochs_before, epochs_after)

    def report(event: str, message: str) -> None:
        log_line({"step": step, "kind": "event", "event": event, "message": message})
        if say:
            bar.clear()
            print(f"ganforge: warning: {message}", file=sys.stderr)

    def snapshot() -> Path:
        """The picture of this step; for toy data also the distribution metrics (when ``eval.every`` is
        auto), logged, and ``checkpoints/best.pt`` when they are the best so far."""
        toy_eval = toy and cfg.eval.every == "auto"
        rngs = world.gather(_rng_state()) if toy_eval else []  # collective: every rank comes here
        if not say:
            return None
        path = run_dir / "samples" / f"step-{step:07d}.png"
        net = G_ema if G_ema is not None else G
        net.eval()
        try:
            with torch.no_grad():
                if not toy:
                    save_grid(cond(net, fixed_z, grid_labels(fixed_z.shape[0], n_classes, device)), path)
                else:
                    z = noise(cfg.model, cfg.eval.n, device, torch.Generator().manual_seed(cfg.eval.seed))
                    x = net(z).float().cpu()
                    title = f"step {step}"
                    if toy_eval:
                        found = assess(x, rngs)
                        shown = ("w1", "ks", "hq_fraction", "modes_covered")
                        title += ": " + ", ".join(f"{k} {found[k]:.4g}" for k in shown if k in found)
                    save_toy_plot(x, data, path, title=title, d_curve=_d_curve(D, data, cfg, device))
        finally:
            G.train()
        if tb is not None:
            tb.image("samples", path, step)
        return path

    def roll_back(why: str) -> None:
        """NaN/Inf: go back to the last good checkpoint with lower learning rates, or stop."""
        nonlocal metrics_file, rollbacks, t_log, images_since_log
        world.barrier()
        ckpt_dir = run_dir / "checkpoints"
        good = latest_checkpoint(ckpt_dir)
        if cfg.on_nan == "stop" or rollbacks >= cfg.nan_max_rollbacks or good is None:
            tried = f" after {rollbacks} rollback(s)" if cfg.on_nan == "rollback" else ""
            raise DivergedError(f"training diverged ({why} at step {step}){tried}; the last good checkpoint is "
                                f"{good}; try lower learning rates (optim.lr_g/lr_d), grad_clip, r1 or "
                                f"spectral_norm")
        bad_step = step
        if say:
            metrics_file.close()
        path, st, _ = load_latest_good(ckpt_dir)
        count = rollbacks + 1
        restore(st, path)
        rollbacks = count
        scale = cfg.nan_lr_factor ** rollbacks
        for opt, lr in ((opt_g, cfg.optim.lr_g), (opt_d, cfg.optim.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        metrics_file = open(run_dir / "metrics.jsonl", "a") if say else None
        log_line({"step": step, "kind": "event", "event": "nan_rollback", "why": why, "at_step": bad_step,
                  "rollback": rollbacks, "lr_g": cfg.optim.lr_g * scale, "lr_d": cfg.optim.lr_d * scale})
        if say:
            print(f"ganforge: warning: {why} at step {bad_step}: rolled back to {path.name}, learning rates "
                  f"x{scale:g} (rollback {rollbacks} of at most {cfg.nan_max_rollbacks})", file=sys.stderr)
        bar.reset(total=total)
        bar.update(step)
        t_log, images_since_log = time.monotonic(), 0

    def log_line(record: Dict[str, Any]) -> None:
        if say:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            if tb is not None:
                tb.record(record)

    bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, disable=not (cfg.log.progress and say),
               desc=run_dir.name, file=sys.stderr, mininterval=0.2 if sys.stderr.isatty() else 15.0)
    stop = _StopFlag()
    t0 = time.monotonic()
    t_log, images_since_log = t0, 0
    B = cfg.train.batch_size
    policies = [p.strip() for p in cfg.diffaugment.split(",") if p.strip()]
    # What D sees: DiffAugment (when on) applied to real and fake alike, differentiably. D's step
    # goes through D's DDP wrapper (gradients averaged over ranks), G's step through the plain D.
    def judge(net: nn.Module, y: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """D's logits for a batch, seen through DiffAugment (when on) and given the labels (conditional)."""
        see = (lambda x: diff_augment(x, policies)) if policies else (lambda x: x)
        return (lambda x: net(see(x), y)) if y is not None else (lambda x: net(see(x)))

    metrics_file = open(run_dir / "metrics.jsonl", "a") if say else None
    # TensorBoard mirrors metrics.jsonl (the source of truth); a resumed run drops its events after `step`.
    tb = TensorBoardLog.open(run_dir, cfg, purge_step=step if state is not None else None) \
        if say and cfg.log.tensorboard else None
    if state is None:
        for text in warned:
            log_line({"step": 0, "kind": "event", "event": "config_warning", "message": text})
    if state is None and cfg.on_nan == "rollback":
        checkpoint()  # step 0: something good to roll back to before the first interval
    last_ckpt_step = step
    try:
        with _signals_to(stop):
            while total is None or step < total:
                out_of_time = cfg.train.max_seconds is not None and time.monotonic() - t0 >= cfg.train.max_seconds
                if world.any(out_of_time, device):  # ranks' clocks differ: stop together
                    run.stopped_by = "max_seconds"
                    break
                epochs_before = stream.position // stream.per_epoch

                for _ in range(cfg.d_steps):
                    real = stream.next()
                    y_real = stream.labels if n_classes else None  # fakes get the real batch's labels
                    if cfg.data.augment:
                        real = real_augment(real)
                    if conv:
                        real = real.contiguous(memory_format=torch.channels_last)
                    with torch.no_grad(), autocast():
                        fake = cond(G_train if world.size == 1 else G, noise(cfg.model, B, device), y_real).float()
                    sigma = _instance_noise(cfg, step)
                    if sigma > 0:  # the same noise level on both sides, so D cannot tell them apart by it
                        real = real + sigma * torch.randn_like(real)
                        fake = fake + sigma * torch.randn_like(fake)
                    lazy_r1 = cfg.r1 > 0 and step % cfg.r1_every == 0
                    if lazy_r1:
                        real.requires_grad_(True)
                    judge_d = judge(D_train, y_real)
                    with autocast():
                        if one_pass:
                            y_both = torch.cat([y_real, y_real]) if y_real is not None else None
                            logits = judge(D_train, y_both)(torch.cat([real, fake])).float()
                            real_logits, fake_logits = logits[: real.shape[0]], logits[real.shape[0]:]
                        else:
                            real_logits, fake_logits = judge_d(real).float(), judge_d(fake).float()
                        d_loss = loss.d(real_logits, fake_logits)
                        if lazy_r1:
                            d_loss = d_loss + cfg.r1 / 2 * cfg.r1_every * r1_penalty(real, real_logits)
                        if loss.gradient_penalty:
                            d_loss = d_loss + lp.gp_lambda * gradient_penalty(judge_d, real, fake)
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(D.parameters(), cfg.grad_clip)
                    opt_d.step()
                    if loss.clip_weights:
                        with torch.no_grad():
                            for p in D.parameters():
                                p.clamp_(-lp.clip, lp.clip)
                D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
                for _ in range(cfg.g_steps):
                    y_fake = torch.randint(n_classes, (B,), device=device) if n_classes else None
                    with autocast():
                        fake = cond(G_train, noise(cfg.model, B, device), y_fake)
                        sigma = _instance_noise(cfg, step)
                        if sigma > 0:
                            fake = fake + sigma * torch.randn_like(fake)
                        g_loss = loss.g(judge(D_plain, y_fake)(fake).float())
                    opt_g.zero_grad(set_to_none=True)
                    g_loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(G.parameters(), cfg.grad_clip)
                    opt_g.step()
                D.requires_grad_(True)
                if G_ema is not None:
                    _update_ema(G_ema, G, cfg.ema)

                step += 1
                if on_step is not None:
                    on_step(step, G, D)
                images_since_log += B * cfg.d_steps * world.size
                with torch.no_grad():  # accumulate on the device; read back only at log time
                    acc += torch.stack([d_loss.detach(), g_loss.detach(),
                                        torch.sigmoid(real_logits.detach()).mean(),
                                        torch.sigmoid(fake_logits.detach()).mean()]).float()
                acc_n += 1
                epochs_after = stream.position // stream.per_epoch
                bar.update(1)

                if step % cfg.log.every == 0:
                    now = time.monotonic()
                    values = world.mean_(acc / acc_n).tolist()  # the same numbers on every rank
                    if not all(math.isfinite(v) for v in values):
                        roll_back("NaN/Inf in the losses")
                        continue
                    record = {"step": step, "kind": "train", "epoch": round(stream.position / stream.per_epoch, 4),
                              **{k: round(v, 6) for k, v in zip(_METRIC_KEYS, values)},
                              "img_per_s": round(images_since_log / max(now - t_log, 1e-9), 1),
                              "lr_g": opt_g.param_groups[0]["lr"], "lr_d": opt_d.param_groups[0]["lr"],
                              "elapsed_s": round(elapsed_before + now - t0, 3)}
                    log_line(record)
                    diversity = diversity_ratio(real.detach(), fake.detach()) if diag.enabled else None
                    for event, message in diag.on_log(record, diversity):
                        report(event, message)
                    bar.set_postfix(d=f"{values[0]:.3f}", g=f"{values[1]:.3f}", img_s=f"{record['img_per_s']:.0f}")
                    acc.zero_()
                    acc_n, t_log, images_since_log = 0, now, 0
                if _due(cfg.log.sample_every, step, epochs_before, epochs_after):
                    snapshot()
                last = total is not None and step >= total
                if eval_due(epochs_before, epochs_after, last):
                    evaluate_images()
                if last or _due(cfg.log.checkpoint_every, step, epochs_before, epochs_after):
                    if not _finite(G, D):  # never write a poisoned checkpoint
                        roll_back("NaN/Inf in the weights")
                        continue
                    checkpoint()
                    last_ckpt_step = step
                if world.any(stop.signum is not None, device):
                    run.stopped_by = "signal"
                    break
        if step > 0 and not world.broadcast((run_dir / "samples" / f"step-{step:07d}.png").exists()):
            snapshot()
        if image_eval and step > 0 and cfg.eval.every == "auto" and last_ckpt_step != step:
            evaluate_images()  # stopped by time or signal: score what is being saved
        if last_ckpt_step != step:  # stopped by time or signal between checkpoints
            if not _finite(G, D):
                raise DivergedError(f"training diverged (NaN/Inf in the weights at step {step}); not saved; "
                                    f"the last good checkpoint is {latest_checkpoint(run_dir / 'checkpoints')}")
            checkpoint()
    finally:
        bar.close()
        if metrics_file is not None:
            metrics_file.close()
        if tb is not None:
            tb.close()
    last = run_dir / "samples" / f"step-{step:07d}.png"
    if say and last.exists():  # the final picture, beside config.yaml
        write_atomic(run_dir / "final.png", lambda f: f.write(last.read_bytes()))
    run.step, run.epoch = step, round(stream.position / stream.per_epoch, 4)
    run.elapsed = elapsed_before + time.monotonic() - t0
    run.signal = stop.signum
    return run


LOWER_IS_BETTER = ("fid", "kid", "kl_modes", "w1", "ks")


def _n_classes(cfg: Config, data) -> int:
    """``conditional: true``: the number of classes in the labelled data; else 0."""
    if not cfg.conditional:
        return 0
    y = getattr(data, "y", None)
    if y is None or int(y.max()) < 1:
        raise GanforgeError(f"conditional: true needs labelled data with 2 or more classes (mnist5k, mnist, "
                            f"fashion-mnist, or a folder with one sub-folder per class); '{cfg.data.name}' has none")
    return int(y.max()) + 1


def _class_names(data, n_classes: int) -> list:
    names = (getattr(data, "info", None) or {}).get("classes") or []
    return list(names) if len(names) == n_classes else [str(k) for k in range(n_classes)]


def _score(metrics: Dict[str, float], best: str = "fid") -> tuple:
    """Rank evaluations, higher is better: 1-D toy data by lowest W1; 2-D by most modes covered, then
    most high-quality samples, then lowest KL; images by ``eval.best``."""
    if "w1" in metrics:
        return (-metrics["w1"],)
    if "hq_fraction" in metrics:
        return (metrics["modes_covered"], metrics["hq_fraction"], -metrics["kl_modes"])
    value = float(metrics[best])
    return (-value if best in LOWER_IS_BETTER else value,)


def _finite(*modules: nn.Module) -> bool:
    """Every parameter of every module is finite (one device sync)."""
    flags = [torch.isfinite(p).all() for m in modules for p in m.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _instance_noise(cfg: Config, step: int) -> float:
    """σ of the instance noise at ``step``: linear from ``instance_noise`` to 0 over ``instance_noise_steps``."""
    if cfg.instance_noise <= 0:
        return 0.0
    return cfg.instance_noise * max(0.0, 1.0 - step / cfg.instance_noise_steps)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BatchNorm statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _d_curve(D: nn.Module, data: Mixture, cfg: Config, device: torch.device):
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


def _saved_config(state: Dict[str, Any], path: Path) -> Config:
    try:
        return build_config(state["config"])
    except (KeyError, GanforgeError) as e:
        raise GanforgeError(f"checkpoint {path} holds no valid config ({e})") from None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics lines logged after the checkpoint we resume from (they will be logged again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            break  # a line torn by a kill: everything after it is suspect
    write_atomic(path, lambda f: f.write("".join(l + "\n" for l in keep).encode()))
