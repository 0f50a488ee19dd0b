"""Plain nn.Modules for G and D, built from the model config and the data's shape; and G's noise."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from ..config import ModelConfig, activations
from ..errors import GanforgeError
from .chars import CharDiscriminator, CharGenerator
from .conditional import ConditionalGenerator, ProjectionDiscriminator
from .dcgan import SIZES, DCGANDiscriminator, DCGANGenerator, dcgan_init
from .mlp import MLPDiscriminator, MLPGenerator, minibatch_moments
from .resnet import ResNetDiscriminator, ResNetGenerator, stage_widths
from .stftgan import STFTDiscriminator, STFTGenerator, grid
from .wavegan import WaveGANDiscriminator, WaveGANGenerator, base_length

__all__ = ["class_labels", "matched_labels", "grid_labels", "interpolate_latents", "MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "dcgan_init",
           "ResNetGenerator", "ResNetDiscriminator",
           "CharGenerator", "CharDiscriminator", "WaveGANGenerator", "WaveGANDiscriminator", "STFTGenerator",
           "STFTDiscriminator", "ARCH_KIND", "check_data_kind",
           "build_generator", "build_discriminator", "noise", "minibatch_moments", "spectral_normalise"]


def _conv_shape(cfg: ModelConfig, data_shape: Tuple[int, ...]) -> Tuple[int, int]:
    """(channels, size) of square 1- or 3-channel images of 28, 32, 64 or 128 px; else one clear error."""
    if len(data_shape) != 3 or data_shape[0] not in (1, 3) or data_shape[1] != data_shape[2] \
            or data_shape[1] not in SIZES:
        raise GanforgeError(f"model.arch {cfg.arch} needs square 1- or 3-channel images of "
                            f"{', '.join(map(str, SIZES))} px, but the data's shape is {list(data_shape)}; set "
                            f"data.image_size and data.channels")
    if cfg.arch == "resnet":
        try:
            stage_widths(cfg.widths, data_shape[1])
        except ValueError as e:
            raise GanforgeError(str(e)) from None
    return data_shape[0], data_shape[1]


def _seq_shape(cfg: ModelConfig, data_shape: Tuple[int, ...]) -> Tuple[int, int]:
    """(alphabet size, sequence length) of text data; else one clear error."""
    if len(data_shape) != 2:
        raise GanforgeError(f"model.arch chars reads text (a UTF-8 file as --data), but the data's shape is "
                            f"{list(data_shape)}")
    return data_shape[0], data_shape[1]


def _wave_shape(cfg: ModelConfig, data_shape: Tuple[int, ...]) -> Tuple[int, int]:
    """(channels, length) of audio clips ``cfg.arch`` can make; else one clear error."""
    if len(data_shape) != 2 or data_shape[0] != 1:
        raise GanforgeError(f"model.arch {cfg.arch} reads mono audio (a folder of WAV files as --data), but the "
                            f"data's shape is {list(data_shape)}")
    try:
        base_length(data_shape[1]) if cfg.arch == "wavegan" else grid(data_shape[1])
    except ValueError as e:
        raise GanforgeError(f"{e}; set data.audio_len") from None
    return data_shape[0], data_shape[1]


ARCH_KIND = {"chars": "text", "wavegan": "audio", "stftgan": "audio"}  # every other arch makes images
PRESET_OF = {"text": "--preset chars", "audio": "--preset fsdd"}


def check_data_kind(cfg, data) -> None:
    """Text and audio need their own nets and no image augmentation; those nets need their data: else one
    clear error."""
    kind = getattr(data, "kind", "image")
    archs = [a for a, k in ARCH_KIND.items() if k == kind]
    if archs and cfg.model.arch not in archs:
        raise GanforgeError(f"data '{cfg.data.name}' is {kind}: it needs model.arch {' or '.join(archs)} "
                            f"({PRESET_OF[kind]}), not {cfg.model.arch}")
    other = ARCH_KIND.get(cfg.model.arch)
    if other is not None and kind != other:
        source = "a UTF-8 file" if other == "text" else "a folder of WAV files"
        raise GanforgeError(f"model.arch {cfg.model.arch} reads {other} ({source} as --data); '{cfg.data.name}' is "
                            f"not {other}")
    if archs and (cfg.diffaugment.strip() or cfg.data.augment or cfg.ada_target):
        raise GanforgeError(f"diffaugment, ada and data.augment transform images; turn them off for {kind}")


def _resnet_args(cfg: ModelConfig) -> dict:
    return dict(widths=cfg.widths, blocks=cfg.blocks, group_channels=cfg.group_channels, expansion=cfg.expansion,
                leak=cfg.leak)


def build_generator(cfg: ModelConfig, data_shape: Tuple[int, ...], n_classes: int = 0) -> nn.Module:
    """G for ``cfg.arch``; DCGAN's weights are drawn as its paper says (from torch's global RNG).
    ``n_classes`` > 0 makes it class-conditional: G(z, y) (see :mod:`.conditional`)."""
    z_in = cfg.z_dim + n_classes
    if cfg.arch == "dcgan":
        channels, size = _conv_shape(cfg, data_shape)
        G = dcgan_init(DCGANGenerator(z_in, size, channels, cfg.g_features, bn_eps=cfg.bn_eps,
                                      bn_momentum=cfg.bn_momentum, fc=cfg.g_fc))
    elif cfg.arch == "resnet":
        channels, size = _conv_shape(cfg, data_shape)
        G = ResNetGenerator(z_in, size, channels, out=cfg.g_out, **_resnet_args(cfg))
    elif cfg.arch == "chars":
        G = CharGenerator(z_in, *_seq_shape(cfg, data_shape), width=cfg.widths[0], blocks=cfg.blocks,
                          gumbel=cfg.gumbel)
    elif cfg.arch == "wavegan":
        channels, length = _wave_shape(cfg, data_shape)
        G = WaveGANGenerator(z_in, length, channels, d=cfg.widths[0])
    elif cfg.arch == "stftgan":
        G = STFTGenerator(z_in, _wave_shape(cfg, data_shape)[1], d=cfg.widths[0])
    else:
        G = _mlp_generator(cfg, data_shape, z_in)
    return ConditionalGenerator(G, n_classes) if n_classes else G


def _mlp_generator(cfg: ModelConfig, data_shape: Tuple[int, ...], z_in: int) -> nn.Module:
    return MLPGenerator(z_in, cfg.g_hidden, data_shape, act=activations(cfg.g_act, len(cfg.g_hidden)),
                        leak=cfg.leak, norm=cfg.g_norm, norm_first=cfg.g_norm_first, bn_eps=cfg.bn_eps,
                        bn_momentum=cfg.bn_momentum, out_act=cfg.g_out)


def build_discriminator(cfg: ModelConfig, data_shape: Tuple[int, ...], n_classes: int = 0) -> nn.Module:
    """D for ``cfg.arch``; with ``n_classes`` > 0, D(x, y) with a projection of the class (see :mod:`.conditional`)."""
    if cfg.arch in ("dcgan", "resnet"):
        channels, size = _conv_shape(cfg, data_shape)
        if cfg.arch == "dcgan":
            D = dcgan_init(DCGANDiscriminator(size, channels, cfg.d_features, norm=cfg.d_norm, leak=cfg.leak,
                                              bn_eps=cfg.bn_eps, bn_momentum=cfg.bn_momentum, fc=cfg.d_fc))
        else:
            D = ResNetDiscriminator(size, channels, **_resnet_args(cfg))
        return ProjectionDiscriminator(D, n_classes) if n_classes else D
    if cfg.arch == "chars":
        D = CharDiscriminator(*_seq_shape(cfg, data_shape), width=cfg.widths[0], blocks=cfg.blocks)
        return ProjectionDiscriminator(D, n_classes) if n_classes else D
    if cfg.arch == "wavegan":
        channels, length = _wave_shape(cfg, data_shape)
        D = WaveGANDiscriminator(length, channels, d=cfg.widths[0], phase_shuffle=cfg.phase_shuffle, leak=cfg.leak)
        return ProjectionDiscriminator(D, n_classes) if n_classes else D
    if cfg.arch == "stftgan":
        D = STFTDiscriminator(_wave_shape(cfg, data_shape)[1], d=cfg.widths[0], leak=cfg.leak)
        return ProjectionDiscriminator(D, n_classes) if n_classes else D

    width = MLPDiscriminator.in_width(data_shape, cfg.d_input, cfg.d_pack)
    if cfg.d_in is not None and cfg.d_in != width:
        raise GanforgeError(f"model.d_in is {cfg.d_in} but D's input ({cfg.d_input}, pack {cfg.d_pack}) "
                            f"on data of shape {list(data_shape)} has {width} features")
    if cfg.d_input == "moments" and cfg.d_pack > 1:
        raise GanforgeError("model.d_pack applies to per-sample D inputs, not d_input: moments")
    D = MLPDiscriminator(data_shape, cfg.d_hidden, act=activations(cfg.d_act, len(cfg.d_hidden)),
                         leak=cfg.leak, dropout=cfg.d_dropout, input=cfg.d_input, pack=cfg.d_pack)
    return ProjectionDiscriminator(D, n_classes) if n_classes else D


def spectral_normalise(D: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every Linear and Conv layer of D, in place."""
    for m in list(D.modules()):
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            torch.nn.utils.parametrizations.spectral_norm(m)
    return D


def grid_labels(n: int, n_classes: int, device: Optional[torch.device] = None) -> Optional[torch.Tensor]:
    """The labels of the fixed-noise grid of a conditional G: 0, 1, …, K−1, 0, … (None when unconditional)."""
    return torch.arange(n, device=device) % n_classes if n_classes else None


def class_labels(n: int, n_classes: int, seed: Optional[int] = None) -> torch.Tensor:
    """``n`` uniform class labels on the CPU, seeded with ``seed + 1`` (so the evaluation's labels never
    share a stream with its noise, which is seeded with ``seed``); fresh entropy when ``seed`` is None."""
    gen = torch.Generator()
    gen.manual_seed(seed + 1) if seed is not None else gen.seed()
    return torch.randint(n_classes, (n,), generator=gen)


def matched_labels(n: int, counts: torch.Tensor, seed: int) -> torch.Tensor:
    """``n`` class labels in the proportions of ``counts`` (a reference set's class histogram) — each class
    gets its share of ``n``, rounded by largest remainder (ties to the lower class) — in an order shuffled
    with ``seed + 1`` (as :func:`class_labels`). The evaluation's labels for a conditional G: its class mix is
    the evaluator's choice, not something G learned, and uniform draws add the noise of the label
    histogram (±√(n/K) a class), which the class-separating features of the domain classifier read as FID."""
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    if counts.numel() == 0 or bool((counts < 0).any()) or float(counts.sum()) <= 0:
        raise ValueError("matched_labels needs a non-empty histogram of non-negative counts")
    share = n * counts / counts.sum()
    per_class = share.floor().long()
    order = torch.argsort(-(share - per_class), stable=True)
    per_class[order[: n - int(per_class.sum())]] += 1
    y = torch.repeat_interleave(torch.arange(counts.numel()), per_class)
    return y[torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))]


def noise(cfg: ModelConfig, n: int, device: Optional[torch.device] = None,
          generator: Optional[torch.Generator] = None, truncation: Optional[float] = None) -> torch.Tensor:
    """G's input: n × z_dim from N(0, I) or U(0, 1), as ``cfg.z_dist`` says. ``truncation`` ψ (normal z
    only): every coordinate with |z| > ψ is drawn again until none is (BigGAN's truncation trick)."""
    draw = torch.rand if cfg.z_dist == "uniform" else torch.randn
    if truncation is not None:
        if cfg.z_dist != "normal":
            raise GanforgeError("truncation applies to Gaussian z (model.z_dist: normal); this generator's z is "
                                "uniform")
        if not truncation > 0:
            raise GanforgeError(f"truncation must be > 0, got {truncation}")
    if generator is not None:  # seeded draws happen on the CPU, then move
        z = draw(n, cfg.z_dim, generator=generator)
    else:
        z = draw(n, cfg.z_dim, device=device)
    while truncation is not None and bool((far := z.abs() > truncation).any()):
        z[far] = torch.randn(int(far.sum()), generator=generator, device=z.device) if generator is not None \
            else torch.randn(int(far.sum()), device=z.device)
    return z.to(device)


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, steps: int, spherical: bool) -> torch.Tensor:
    """Paths from each row of ``z0`` to the same row of ``z1``: (n, steps, z_dim), both ends included.

    Spherical (slerp, Shoemake 1985; White 2016 for GAN latents) keeps a Gaussian z at the norms the
    generator was trained on; linear (lerp) suits uniform z, whose cube is convex. Rows whose ends are
    (anti)parallel fall back to linear."""
    if steps < 2:
        raise GanforgeError(f"an interpolation needs at least 2 steps, got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).view(1, steps, 1)
    a, b = z0.unsqueeze(1), z1.unsqueeze(1)
    linear = (1 - t) * a + t * b
    if not spherical:
        return linear
    cos = torch.nn.functional.cosine_similarity(z0, z1, dim=1).clamp(-1, 1).view(-1, 1, 1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    safe = so.abs() > 1e-6
    so = torch.where(safe, so, torch.ones_like(so))
    sph = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so
    return torch.where(safe, sph, linear)
