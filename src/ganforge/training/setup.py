"""A run's set-up, before the first step: the run dir (new, or resumed from its checkpoint), the data
and what evaluations score against, the models and optimisers in their distributed wrappers, the
training state — gathered into one :class:`Training` that the loop and its duties work on.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from torch import nn

from ..checkpoint import latest_checkpoint, load_latest_good, os_error, write_atomic
from ..config import Config, build_config, config_warnings, load_run_config, save_yaml
from ..data import Mixture, load_dataset
from ..data.batches import batches_for
from ..diagnostics import Diagnostics
from ..dist import World, ddp
from ..errors import GanforgeError, StorageError
from ..lock import LOCK_NAME, RunLock
from ..logs import log
from ..metrics import reference
from ..models import build_discriminator, build_generator, check_data_kind, noise, spectral_normalise
from ..report import save_audio_grid, save_grid, save_toy_plot, write_lines
from .context import Training
from .runlog import RunLog, truncate_metrics
from .state import TrainState, seed_everything
from .step import GANStep, amp_context, make_nets, rows_independent

# Config keys that may differ on --resume: budgets, logging, where it runs. Anything else would
# change what is being trained, so a resumed run would no longer be the run it continues.
RESUMABLE_KEYS = ("description", "device", "dist_timeout", "train.epochs", "train.steps", "train.max_seconds", "train.fast",
                  "train.compile", "train.amp",
                  "data.root", "data.download", "data.workers", "log.", "eval.", "diagnostics", "diag_window")


def prepare(cfg: Config, run_dir: Union[str, Path, None], resume: bool, world: World,
            device: torch.device) -> Training:
    """Check the run dir, load the data, build the models and the state (restored on resume), write the
    run dir's fixed files, and open its log."""
    if cfg.sync_bn and world.size > 1 and device.type != "cuda":
        raise GanforgeError("sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel); drop sync_bn on CPU")
    resume = resume or _restarted(run_dir, world)
    run_dir, lock, created = _claim(cfg, run_dir, resume, world)
    try:
        t = _prepare(cfg, run_dir, resume, world, device)
    except BaseException:  # nothing trained: give the run dir back as it was
        if lock is not None:
            lock.release()
        if created:
            _remove_if_untouched(run_dir, created)
        raise
    t.lock = lock
    return t


def _prepare(cfg: Config, run_dir: Path, resume: bool, world: World, device: torch.device) -> Training:
    saved, ckpt_path = _resume_point(cfg, run_dir, world) if resume else (None, None)
    data = load_dataset(cfg.data, verbose=world.main)  # bad data fails here, before anything is written
    check_data_kind(cfg, data)
    ref = _reference(cfg, data, world)
    image_eval = world.broadcast(ref is not None and not isinstance(data, Mixture))
    n_classes = _n_classes(cfg, data)
    world.barrier()  # every rank has checked the run dir before rank 0 writes into it
    step_fn = _build(cfg, data, n_classes, world, device)
    batches = batches_for(data, cfg.train.batch_size, cfg.seed, device, samples_per_epoch=cfg.data.samples_per_epoch,
                          workers=cfg.data.workers, rank=world.rank, world=world.size)
    meta = {"world_size": world.size, "config": cfg.to_dict(), "data_shape": list(data.shape),
            "n_classes": n_classes, "classes": _class_names(data, n_classes)}
    if getattr(data, "kind", "") == "text":
        meta["alphabet"] = data.alphabet  # what G's rows mean: sampling decodes them without the data
    if getattr(data, "kind", "") == "audio":
        meta["sample_rate"] = data.rate  # what G's clips are played at
    state = TrainState(step_fn.nets, batches, Diagnostics(cfg.loss, cfg.diag_window, cfg.diagnostics),
                       fixed_z=noise(cfg.model, cfg.log.n_samples, device, torch.Generator().manual_seed(cfg.seed + 1)),
                       acc=torch.zeros(4, device=device), meta=meta)
    if saved is not None:
        state.load_state_dict(saved, ckpt_path, world.rank)
        if world.main:
            truncate_metrics(run_dir / "metrics.jsonl", state.step)
    if world.main:
        _write_run_files(cfg, data, run_dir)
    warned = config_warnings(cfg)
    for text in warned if world.main and saved is None else ():
        log.warning(text)
    total = cfg.train.steps
    if total is None and cfg.train.epochs is not None:
        total = math.ceil(cfg.train.epochs * batches.per_epoch / cfg.d_steps)
    return Training(cfg, world, device, run_dir, data, n_classes, ref, image_eval, state, step_fn, total,
                    resumed=saved is not None, warnings=warned)


def open_log(t: Training) -> RunLog:
    """The run's metrics.jsonl, TensorBoard mirror and progress bar (new runs: config warnings logged)."""
    t.log = RunLog(t.run_dir, t.cfg, active=t.world.main, total=t.total, step=t.state.step, resumed=t.resumed)
    for text in t.warnings if not t.resumed else ():
        t.log.event(0, "config_warning", text, say=False)
    return t.log


def _restarted(run_dir, world: World) -> bool:
    """Under torchrun with ``--max-restarts``, a restarted group (TORCHELASTIC_RESTART_COUNT > 0) resumes
    the run dir by itself when the first attempt got as far as writing its config.yaml."""
    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS") or 0) > 0 and run_dir is None:
        raise GanforgeError("torchrun --max-restarts: give --run-dir, so that a restarted group finds the run "
                            "it continues")
    restarts = int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)
    again = world.broadcast(restarts > 0 and run_dir is not None and (Path(run_dir) / "config.yaml").is_file())
    if again and world.main:
        log.info(f"note: torchrun restart {restarts}: resuming {run_dir} from its latest checkpoint")
    return again


def _claim(cfg: Config, run_dir, resume: bool, world: World) -> Tuple[Path, Optional[RunLock], Optional[Path]]:
    """The run dir, locked by rank 0 for this process's life: (path, lock, the top folder created here)."""
    if resume and run_dir is None:
        raise GanforgeError("--resume needs --run-dir naming the run to continue")
    if not resume:
        run_dir = world.broadcast(str(run_dir) if run_dir is not None else str(default_run_dir(cfg)))
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise GanforgeError(f"run dir {run_dir} is a file, not a directory")
    lock, created = None, None
    if world.main and (not resume or run_dir.is_dir()):  # resuming a missing dir: load_run_config says so
        created = next((p for p in reversed([run_dir, *run_dir.parents]) if not p.exists()), None)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create run dir {run_dir}: {os_error(e)}") from None
        try:
            lock = RunLock.acquire(run_dir)
        except BaseException:
            if created:
                _remove_if_untouched(run_dir, created)
            raise
    if not resume:
        try:
            _check_new_run_dir(run_dir)
        except GanforgeError:
            if lock is not None:
                lock.release()
            raise
    return run_dir, lock, created


def _resume_point(cfg: Config, run_dir: Path, world: World):
    """The checkpoint to continue from and its path, or (None, None) to start the run again from step 0."""
    say = world.main
    saved_cfg = load_run_config(run_dir)  # no config.yaml: nothing to resume
    world.barrier()
    if say:
        for stale in (run_dir / "checkpoints").glob(".*.tmp"):  # a write interrupted by a kill
            stale.unlink()
    if latest_checkpoint(run_dir / "checkpoints") is None:
        # Killed before its first checkpoint: nothing to continue, so start it again from step 0.
        if say:
            log.warning(f"{run_dir} has no checkpoint yet; starting it from step 0")
        check_resume_config(saved_cfg, cfg)
        if say:
            truncate_metrics(run_dir / "metrics.jsonl", 0)
        return None, None
    ckpt_path, state, skipped = load_latest_good(run_dir / "checkpoints")
    for problem in skipped if say else ():
        log.warning(f"{problem}; resuming from {ckpt_path} instead")
    check_resume_config(_saved_config(state, ckpt_path), cfg)
    if int(state.get("world_size", 1)) != world.size:
        raise GanforgeError(f"{run_dir} was trained by {state.get('world_size', 1)} process(es); resume it "
                            f"with as many (this is {world.size}), so its data order and batch stay the same")
    return state, ckpt_path


def _reference(cfg: Config, data, world: World):
    """What evaluations score against (rank 0): the toy mixture itself, or the real images' features."""
    if isinstance(data, Mixture):
        return data
    if cfg.eval.every == "off" or not world.main or getattr(data, "kind", "") in ("text", "audio"):
        return None
    try:
        return reference(data, cfg.eval, verbose=True, training=True)
    except GanforgeError as e:
        if cfg.eval.every != "auto":
            raise
        log.info(f"note: {e}; training without image metrics")
        return None


def _build(cfg: Config, data, n_classes: int, world: World, device: torch.device) -> GANStep:
    """G and D (the same initial weights on every rank), in their wrappers, with optimisers: the step."""
    seed_everything(cfg.seed)
    G = build_generator(cfg.model, data.shape, n_classes).to(device)
    D = build_discriminator(cfg.model, data.shape, n_classes)
    D = (spectral_normalise(D) if cfg.spectral_norm else D).to(device)
    if world.size > 1:
        seed_everything(cfg.seed + 7919 * world.rank)  # different noise (and augmentation) on each rank
        if cfg.sync_bn:
            G, D = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
    # Buffers (BatchNorm statistics) stay per process; rank 0's are the ones saved.
    conv = cfg.train.fast and len(data.shape) == 3 and cfg.model.arch in ("dcgan", "resnet")
    if conv:  # oneDNN's convolutions run faster on NHWC; the weights stay the same numbers
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    nets = make_nets(cfg, G, D, (lambda m: ddp(m, device)) if world.size > 1 else (lambda m: m))
    one_pass = cfg.train.fast and rows_independent(cfg, D)  # D judges real and fake in one forward
    if cfg.train.fast and device.type == "cuda":  # TF32 tensor-core matmuls and tuned cuDNN algorithms
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return GANStep(cfg, nets, n_classes, device, distributed=world.size > 1, one_pass=one_pass,
                   channels_last=conv, autocast=amp_context(cfg, device, world.main))


def _write_run_files(cfg: Config, data, run_dir: Path) -> None:
    """config.yaml, data.json and the real-sample picture (rank 0)."""
    try:
        (run_dir / "samples").mkdir(exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write into run dir {run_dir}: {os_error(e)}") from None
    save_yaml(cfg, run_dir / "config.yaml")
    if getattr(data, "info", None):
        write_atomic(run_dir / "data.json", lambda f: f.write(json.dumps(data.info, indent=1).encode()))
    if (run_dir / "samples" / "real.png").exists() or (run_dir / "samples" / "real.txt").exists():
        return
    if getattr(data, "kind", "") == "text":
        shown = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + 2))
        write_lines(data.decode(data.take(shown[: cfg.log.n_samples])), run_dir / "samples" / "real.txt")
    elif getattr(data, "kind", "") == "audio":
        shown = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + 2))[:16]
        names = (data.info.get("classes") or None) and [data.info["classes"][k] for k in data.y[shown].tolist()]
        save_audio_grid(data.take(shown), data.rate, run_dir / "samples" / "real.png", names)
    elif isinstance(data, Mixture):
        real = data.sample(cfg.eval.n, generator=torch.Generator().manual_seed(cfg.eval.seed))
        save_toy_plot(real, data, run_dir / "samples" / "real.png", title="real samples", label="real")
    else:
        shown = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed + 2))
        save_grid(data.take(shown[: cfg.log.n_samples]), run_dir / "samples" / "real.png")


def default_run_dir(cfg: Config) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{cfg.preset}-{stamp}"
    i = 1
    while path.exists():
        i += 1
        path = Path("runs") / f"{cfg.preset}-{stamp}-{i}"
    return path


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.is_dir() and any(not _untouched(p) for p in run_dir.iterdir()):
        raise GanforgeError(f"run dir {run_dir} is not empty: use --resume to continue it, or choose another --run-dir")


def _untouched(p: Path) -> bool:
    """The lock file or an empty folder: what a trainer that never got going leaves."""
    return p.name == LOCK_NAME or (p.is_dir() and not any(p.iterdir()))


def _remove_if_untouched(run_dir: Path, top: Path) -> None:
    """Remove a run dir this process created (and its parents up to ``top``, which it created too) if
    nothing but the lock or empty folders is in it: a run that failed before it began leaves no trace."""
    try:
        if not all(_untouched(p) for p in run_dir.iterdir()):
            return
        for p in run_dir.iterdir():
            p.rmdir() if p.is_dir() else p.unlink()
        for d in [run_dir, *run_dir.parents]:
            d.rmdir()
            if d == top:
                break
    except OSError:
        pass


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


def _saved_config(state: Dict[str, Any], path: Path) -> Config:
    try:
        return build_config(state["config"])
    except (KeyError, GanforgeError) as e:
        raise GanforgeError(f"checkpoint {path} holds no valid config ({e})") from None


def _n_classes(cfg: Config, data) -> int:
    """``conditional: true``: the number of classes in the labelled data; ``auto``: the same where the data
    has labels of 2 or more classes and D judges single samples, else 0; ``false``: 0."""
    if cfg.conditional == "false":
        return 0
    y = getattr(data, "y", None)
    labelled = y is not None and not isinstance(data, Mixture) and int(y.max()) >= 1
    if cfg.conditional == "auto":
        single = cfg.model.d_input == "sample" and cfg.model.d_pack == 1
        return int(y.max()) + 1 if labelled and single else 0
    if not labelled:
        raise GanforgeError(f"conditional: true needs labelled data with 2 or more classes (mnist5k, mnist, "
                            f"fashion-mnist, or a folder with one sub-folder per class); '{cfg.data.name}' has none")
    return int(y.max()) + 1


def _class_names(data, n_classes: int) -> list:
    names = (getattr(data, "info", None) or {}).get("classes") or []
    return list(names) if len(names) == n_classes else [str(k) for k in range(n_classes)]
