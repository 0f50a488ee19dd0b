"""What a user holds after training: a :class:`Run` (a run directory) and a :class:`LoadedGAN`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from . import training
from .checkpoint import latest_checkpoint, load_checkpoint, load_latest_good
from .config import TOY_DATA, Config, build_config, load_run_config
from .data import to_unit
from .dist import resolve_device
from .errors import GanforgeError
from .inverse import Inpainting, inpaint, search
from .logs import log
from .metric_spec import rank, rank_key
from .models import build_generator, class_labels, interpolate_latents, noise

PathLike = Union[str, Path]


_TORN_SAID: set = set()  # (metrics file, line): each torn line is reported once per process


@dataclass
class Run:
    """A run directory: ``config.yaml``, ``metrics.jsonl``, ``samples/``, ``checkpoints/``.

    ``ganforge.train`` returns one; ``Run("runs/mine")`` opens one from disk (its saved config, and the
    step of its last logged line)."""

    dir: Path
    config: Optional[Config] = None
    step: int = 0
    epoch: float = 0.0
    elapsed: float = 0.0
    stopped_by: str = "budget"  # budget | max_seconds | signal
    signal: Optional[int] = None  # the signal number when stopped_by == "signal"
    rank: int = 0  # distributed runs: this process's rank (only rank 0 writes the run dir)
    final_metrics: Optional[Dict[str, float]] = None  # toy data: the last evaluation's numbers

    def __post_init__(self) -> None:
        self.dir = Path(self.dir)
        if self.config is None:  # opened from disk
            if not self.dir.is_dir():
                raise GanforgeError(f"no such run dir: {self.dir}")
            if not (self.dir / "config.yaml").is_file():
                raise GanforgeError(f"{self.dir} is not a ganforge run dir (no config.yaml)")
            self.config = load_run_config(self.dir)
            lines = [m for m in self.metrics if m.get("kind") in ("train", "eval")]
            if lines:  # the last step logged (an evaluation may come after the last train line)
                last = max(lines, key=lambda m: int(m.get("step", 0)))
                self.step, self.epoch = int(last.get("step", 0)), float(last.get("epoch", 0.0))
                train_lines = [m for m in lines if m.get("kind") == "train"]
                self.elapsed = float(train_lines[-1].get("elapsed_s", 0.0)) if train_lines else 0.0

    @property
    def metrics(self) -> List[Dict[str, Any]]:
        """The lines of ``metrics.jsonl`` as dicts, in order: ``kind`` is ``train`` (losses, D(x), D(G(z)),
        img/s, learning rates), ``eval`` (sample-quality metrics) or ``event`` (warnings, diagnostics,
        rollbacks)."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut short by a crash mid-write: everything before it is good
                if (str(path), i) not in _TORN_SAID:
                    _TORN_SAID.add((str(path), i))
                    log.warning(f"{path} line {i} is torn (a kill in the middle of a write); it is "
                                f"left out (--resume rewrites it)")
        return out

    @property
    def metrics_df(self):
        """``metrics`` as a pandas DataFrame (one row per line, NaN where a line lacks a column);
        needs pandas (``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise GanforgeError("Run.metrics_df needs pandas: pip install pandas (Run.metrics gives the same "
                                "lines as a list of dicts)") from None
        return pd.DataFrame(self.metrics)

    @property
    def grids(self) -> List[Path]:
        """The fixed-noise sample pictures in ``samples/``, in step order."""
        return sorted((self.dir / "samples").glob("step-*.png"))

    @property
    def last_grid(self) -> Optional[Path]:
        grids = self.grids
        return grids[-1] if grids else None

    def load(self, device: str = "cpu", checkpoint: Optional[PathLike] = None) -> "LoadedGAN":
        """The generator of this run's latest good checkpoint (or of ``checkpoint``)."""
        return load(checkpoint if checkpoint is not None else self.dir, device=device)


def train(config: Config, run_dir: Optional[PathLike] = None, *, resume: bool = False,
          on_step: Optional[Callable[[int, nn.Module, nn.Module], None]] = None) -> Run:
    """Train G and D as ``config`` says, writing everything into ``run_dir``; return the :class:`Run`.

    ``resume=True`` continues ``run_dir`` from its latest checkpoint; ``config`` may differ from the
    run's saved config only in budgets, logging and device. ``on_step(step, G, D)`` is called after
    every step (for inspection or experiments; it runs inside the loop, so keep it cheap).
    """
    t = training.run(config, run_dir, resume=resume, on_step=on_step)
    s = t.state
    return Run(t.run_dir, t.cfg, s.step, s.epoch, s.elapsed(), stopped_by=t.stop or "budget", signal=t.signal,
               rank=t.world.rank, final_metrics=t.final_metrics)


class LoadedGAN:
    """A trained generator with its config, ready to sample."""

    def __init__(self, generator: nn.Module, config: Config, data_shape: tuple, step: int,
                 source: Path, device: torch.device, classes: Optional[list] = None,
                 fixed_z: Optional[torch.Tensor] = None, alphabet: str = "", sample_rate: int = 0) -> None:
        self.generator = generator
        self.alphabet = alphabet  # text runs: the character of each of G's output rows
        self.sample_rate = sample_rate  # audio runs: the rate G's clips play at
        self.fixed_z = fixed_z  # the noise of the run's training grids (checkpoints; None for exports)
        self.classes = list(classes or [])  # conditional runs: the class names, in label order
        self.config = config
        self.data_shape = tuple(data_shape)
        self.step = step
        self.source = source
        self.device = device
        self.chosen: Optional[str] = None  # why a run dir gave best.pt rather than its latest checkpoint

    @property
    def z_dim(self) -> int:
        return self.config.model.z_dim

    @property
    def is_text(self) -> bool:
        return bool(self.alphabet)

    @property
    def is_audio(self) -> bool:
        return bool(self.sample_rate)

    @property
    def is_image(self) -> bool:
        return self.config.data.name not in TOY_DATA and not self.is_text and not self.is_audio

    def text(self, x: torch.Tensor) -> List[str]:
        """A text G's samples (n, V, L) as n strings, the most likely character at each position."""
        from .data.text import decode

        return decode(x, self.alphabet)

    def noise(self, n: int, seed: Optional[int] = None, truncation: Optional[float] = None) -> torch.Tensor:
        """``n`` latent vectors from G's noise distribution, on its device; seeded when ``seed`` is given (the
        draw of in-training evaluations and ``ganforge eval``). ``truncation`` ψ: see :func:`models.noise`."""
        gen = torch.Generator()
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        return noise(self.config.model, n, self.device, gen, truncation)

    def latents(self, start: int, n: int, seed: int, truncation: Optional[float] = None) -> torch.Tensor:
        """Noise vectors ``start`` .. ``start + n - 1`` of the sampling sequence of ``seed``: vector i depends
        on (seed, i) only, so a sample set is the same however it is split into batches."""
        out = _chunk_slices(start, n, lambda c: noise(self.config.model, SAMPLE_CHUNK, None,
                                                       _chunk_generator(seed, c, 0), truncation))
        return torch.cat(out).to(self.device) if out else torch.empty(0, self.z_dim)

    def chunk_labels(self, start: int, n: int, seed: int) -> torch.Tensor:
        """Random class labels ``start`` .. ``start + n - 1`` of the sampling sequence of ``seed`` (per index,
        as :meth:`latents`)."""
        return torch.cat(_chunk_slices(start, n, lambda c: torch.randint(
            self.n_classes, (SAMPLE_CHUNK,), generator=_chunk_generator(seed, c, 1))))

    def iter_samples(self, n: int, seed: int, labels: Optional[torch.Tensor] = None,
                     truncation: Optional[float] = None, batch_size: int = 1000):
        """Samples 0 .. n-1 of the sequence of ``seed`` in batches of ``batch_size``, as (x, y) pairs in the
        units of :meth:`sample` (y: the batch's labels, None when unconditional); memory is one batch."""
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            y = None
            if self.n_classes:
                y = labels[start: start + m] if labels is not None else self.chunk_labels(start, m, seed)
            x = self.generate(self.latents(start, m, seed, truncation), y, batch_size=batch_size)
            yield (to_unit(x) if self.is_image else x), y

    @property
    def n_classes(self) -> int:
        """Number of classes of a conditional generator; 0 when unconditional."""
        return len(self.classes)

    def labels(self, n: int, labels=None, seed: Optional[int] = None) -> Optional[torch.Tensor]:
        """Class labels for ``n`` samples of a conditional G: ``labels`` (an int, or a sequence of n ints),
        else seeded uniform draws (the evaluation's when ``seed`` is the run's eval seed); None when
        unconditional."""
        if not self.n_classes:
            if labels is not None:
                raise GanforgeError("this generator is not conditional; it takes no class labels")
            return None
        if labels is None:
            return class_labels(n, self.n_classes, seed)
        y = torch.full((n,), int(labels)) if isinstance(labels, int) else torch.as_tensor(labels, dtype=torch.long)
        if y.shape != (n,) or int(y.min()) < 0 or int(y.max()) >= self.n_classes:
            raise GanforgeError(f"class labels must be {n} integers in 0..{self.n_classes - 1}")
        return y

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, batch_size: int = 1024) -> torch.Tensor:
        """G(z) (conditional: G(z, y)) in the generator's own range ([-1, 1] for images), on the CPU."""
        self.generator.eval()
        if self.n_classes and y is None:
            raise GanforgeError("this generator is conditional: give class labels y")
        out = []
        for i in range(0, z.shape[0], batch_size):
            zi = z[i : i + batch_size].to(self.device)
            out.append((self.generator(zi, y[i : i + batch_size].to(self.device)) if self.n_classes
                        else self.generator(zi)).float().cpu())
        return torch.cat(out) if out else torch.empty(0, *self.data_shape)

    def sample(self, n: int, seed: Optional[int] = None, labels=None, truncation: Optional[float] = None) -> torch.Tensor:
        """``n`` samples as a CPU float tensor: images (n, C, H, W) with pixel values in [0, 1];
        toy data (n, D) in the data's own units. Conditional generators take ``labels`` (one class for
        all, or one per sample; default: random classes). Sample i depends on (seed, i) only: the first
        k of ``sample(n, seed)`` are ``sample(k, seed)``. ``truncation`` ψ trades diversity for fidelity
        (Gaussian z: coordinates beyond ±ψ are drawn again)."""
        if n < 1:
            raise GanforgeError(f"number of samples must be >= 1, got {n}")
        if seed is None:
            seed = int(torch.randint(2**31 - 1, (1,)))
        y = self.labels(n, labels) if labels is not None else None
        return torch.cat([x for x, _ in self.iter_samples(n, seed, y, truncation)])

    @property
    def slerp_default(self) -> bool:
        """Latent walks are spherical for Gaussian z (linear paths cut through the low-norm middle G never
        saw in training) and linear for uniform z, whose cube is convex."""
        return self.config.model.z_dist == "normal"

    def interpolate(self, rows: int = 8, steps: int = 10, spherical: Optional[bool] = None,
                    seed: Optional[int] = None, labels=None, truncation: Optional[float] = None) -> torch.Tensor:
        """Latent walks: ``rows`` random pairs (z0, z1), each walked in ``steps`` points from one end to the
        other; returns (rows, steps, *sample shape) in the units of :meth:`sample`. ``spherical`` (default:
        True for Gaussian z, False for uniform z) picks slerp or lerp. Conditional generators hold one
        class per row (``labels``: one int, or one per row; default random)."""
        if rows < 1:
            raise GanforgeError(f"number of rows must be >= 1, got {rows}")
        if spherical is None:
            spherical = self.slerp_default
        if seed is None:
            seed = int(torch.randint(2**31 - 1, (1,)))
        z = self.latents(0, 2 * rows, seed, truncation)  # the ends are samples 0 .. 2·rows-1 of sample(seed=seed)
        path = interpolate_latents(z[:rows], z[rows:], steps, spherical)  # (rows, steps, z_dim)
        y = self.labels(rows, labels, seed)
        y = y.repeat_interleave(steps) if y is not None else None
        x = self.generate(path.reshape(rows * steps, -1), y)
        x = to_unit(x) if self.is_image else x
        return x.reshape(rows, steps, *x.shape[1:])


    def project(self, x: torch.Tensor, steps: int = 200, restarts: int = 4, seed: int = 0,
                features: str = "pixel", progress: bool = False, **kw):
        """Project real images ``x`` (N, C, H, W in [0, 1], the generator's shape) into z: returns a
        :class:`~ganforge.inverse.Projection` (G(z) in [0, 1], z, y for conditional runs, distance). G is
        frozen: eval mode, no gradient into its weights. See :mod:`ganforge.inverse` for the search."""
        return search(self, x, None, steps=steps, restarts=restarts, seed=seed, features=features,
                      progress=progress, **kw)

    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, steps: int = 200, restarts: int = 4, seed: int = 0,
                progress: bool = False, **kw) -> Inpainting:
        """Fill the missing pixels (``mask`` (N or 1, 1, H, W): 1 known, 0 missing) of ``x`` from G: returns
        an :class:`~ganforge.inverse.Inpainting` (filled images, known pixels as given; G(z); z; y; distance)."""
        return inpaint(self, x, mask, steps=steps, restarts=restarts, seed=seed, progress=progress, **kw)


SAMPLE_CHUNK = 1000  # sampling draws noise in seeded chunks of this many vectors


def _chunk_slices(start: int, n: int, draw) -> List[torch.Tensor]:
    """Items ``start`` .. ``start + n - 1`` of a sequence drawn in whole chunks of SAMPLE_CHUNK (``draw(c)``
    gives chunk c), as the slices of the chunks they fall in."""
    out = []
    for chunk in range(start // SAMPLE_CHUNK, (start + n - 1) // SAMPLE_CHUNK + 1):
        lo = max(start - chunk * SAMPLE_CHUNK, 0)
        out.append(draw(chunk)[lo: min(start + n - chunk * SAMPLE_CHUNK, SAMPLE_CHUNK)])
    return out


def _chunk_generator(seed: int, chunk: int, stream: int) -> torch.Generator:
    """The generator of one chunk of the sampling sequence (stream 0: z, 1: class labels)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, chunk, stream]).generate_state(1)[0]))


def _load_state(path: Path) -> Tuple[Path, Dict[str, Any], Optional[str]]:
    """(checkpoint path, state, why) for a run dir (its newest loadable checkpoint, or ``best.pt`` when the
    newest scored worse, with ``why`` saying so), a checkpoint file, or an exported ``.safetensors``."""
    if path.is_dir():
        if latest_checkpoint(path / "checkpoints") is None:
            raise GanforgeError(f"no checkpoint in run dir {path} (expected {path / 'checkpoints'}/step-*.pt)")
        ckpt, state, skipped = load_latest_good(path / "checkpoints")
        for problem in skipped:
            log.warning(f"{problem}; using {ckpt} instead")
        return _best_if_last_is_worse(path, ckpt, state)
    if not path.exists():
        raise GanforgeError(f"no such run dir or checkpoint: {path}")
    if path.suffix == ".safetensors":
        return path, _read_export(path), None
    return path, load_checkpoint(path), None


def _best_if_last_is_worse(run_dir: Path, ckpt: Path, state: Dict[str, Any]) -> Tuple[Path, Dict[str, Any], Optional[str]]:
    """``checkpoints/best.pt`` instead of the newest checkpoint when the run scored the newest one and it
    came out worse than the (older) best (by the run's ``eval.best``; toy runs by their own order); otherwise the
    newest, as it is."""
    best_path, step = run_dir / "checkpoints" / "best.pt", int(state.get("step", 0))
    try:
        best = json.loads((best_path.with_suffix(".json")).read_text())
        key = state["config"]["eval"]["best"]
        last = [r for r in Run(run_dir, build_config(state["config"])).metrics
                if r.get("kind") == "eval" and r.get("step") == step]
        if not best_path.is_file() or int(best["step"]) >= step or not last or \
                not rank(last[-1], key) < rank(best, key):
            return ckpt, state, None
        saved = load_checkpoint(best_path)
    except (OSError, ValueError, KeyError, TypeError, GanforgeError):
        return ckpt, state, None  # no usable best.pt: the newest checkpoint stands
    name = rank_key(last[-1], key)
    why = (f"using checkpoints/best.pt (step {int(best['step'])}, {name} {float(best[name]):.4g}): the last "
           f"checkpoint (step {step}) scored worse ({name} {float(last[-1][name]):.4g})")
    return best_path, saved, why


def load(path: PathLike, device: str = "cpu") -> LoadedGAN:
    """Load the generator of a run dir, a checkpoint file, or an export. A run dir gives its latest good
    checkpoint, or ``checkpoints/best.pt`` when the run scored the latest and it came out worse than the
    best (``LoadedGAN.chosen`` then says so, and ``ganforge sample`` prints it)."""
    ckpt_path, state, why = _load_state(Path(path))
    try:
        config = build_config(state["config"])
        shape = tuple(int(s) for s in state["data_shape"])
        classes = list(state.get("classes") or [])
        G = build_generator(config.model, shape, int(state.get("n_classes", 0)))
        # The EMA of G's weights is what training showed in its grids, when the run kept one.
        G.load_state_dict(state["G_ema"] if "G_ema" in state else state["G"])
    except GanforgeError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise GanforgeError(f"checkpoint {ckpt_path} does not match its own config: {str(e).splitlines()[0]}") from None
    dev = resolve_device(device)
    gan = LoadedGAN(G.to(dev).eval(), config, shape, int(state.get("step", 0)), ckpt_path, dev, classes,
                    state.get("fixed_z"), alphabet=state.get("alphabet") or "",
                    sample_rate=int(state.get("sample_rate") or 0))
    gan.chosen = why
    return gan


def _read_export(path: Path) -> Dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # safetensors raises its own error types for truncated or foreign files
        raise GanforgeError(f"cannot load {path}: not a readable safetensors file") from None
    if meta.get("format") != "ganforge-generator":
        raise GanforgeError(f"{path} is not a generator exported by ganforge")
    return {"config": json.loads(meta["config"]), "data_shape": json.loads(meta["data_shape"]),
            "step": int(meta.get("step", 0)), "G": tensors, "n_classes": int(meta.get("n_classes", 0)),
            "classes": json.loads(meta.get("classes", "[]")), "alphabet": json.loads(meta.get("alphabet", '""')),
            "sample_rate": int(meta.get("sample_rate", 0))}
