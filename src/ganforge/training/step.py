"""One training step: Goodfellow et al. (2014), Algorithm 1 — and nothing else.

    for number of training iterations do
        for k steps do                                    # cfg.d_steps
            sample a minibatch of m noise samples z and m examples x from the data
            update D by ascending its stochastic gradient              → d_update()
        end for
        sample a minibatch of m noise samples z
        update G by descending its stochastic gradient                 → g_update()  (cfg.g_steps times)
    end for

around which the field's stabilisers sit: DiffAugment on what D sees, instance noise, (lazy) R1 and R2
and WGAN-GP penalties, RpGAN's pairing of real and fake, gradient clipping, WGAN weight clipping, one D
forward for real and fake together, and an EMA of G's weights. This module knows nothing of files,
logging, evaluation or signals: it takes :class:`Nets` (what trains) and a stream of real batches and
returns the step's numbers.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..augment import diff_augment, real_augment
from ..config import Config
from ..logs import log
from ..losses import Loss, build_loss, gradient_penalty, r1_penalty
from ..models import noise


@dataclass
class Nets:
    """What trains. ``G`` and ``D`` are the modules whose weights are saved; ``G_train`` and ``D_train``
    are what the step calls for their own updates (DistributedDataParallel and/or torch.compile around
    them, or they themselves); ``D_plain`` is D without DDP, for G's update (D's weights are frozen
    there, so DDP would wait for gradients that never come)."""

    G: nn.Module
    D: nn.Module
    G_train: nn.Module
    D_train: nn.Module
    D_plain: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: Loss
    G_ema: Optional[nn.Module] = None

    @property
    def G_eval(self) -> nn.Module:
        """The generator that samples (grids, evaluations, exports): the EMA of G where the run keeps one."""
        return self.G_ema if self.G_ema is not None else self.G


@dataclass
class StepOut:
    """The numbers of one step: the last D update's losses and logits, G's loss, and the batches they saw."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor
    real: torch.Tensor  # the last real batch D saw (after augmentation and instance noise)
    fake: torch.Tensor  # the last fake batch G was judged on


def make_nets(cfg: Config, G: nn.Module, D: nn.Module, wrap: Callable[[nn.Module], nn.Module]) -> Nets:
    """Optimisers, loss and EMA for G and D; ``wrap`` puts DDP around a module (identity in a world of one)."""
    G_train, D_train, D_plain = wrap(G), wrap(D), D
    if cfg.train.compile:
        G_train, D_train, D_plain = torch.compile(G_train), torch.compile(D_train), torch.compile(D)
    lp = cfg.loss_params
    return Nets(G=G, D=D, G_train=G_train, D_train=D_train, D_plain=D_plain,
                opt_g=make_optimizer(cfg, G.parameters(), cfg.optim.lr_g),
                opt_d=make_optimizer(cfg, D.parameters(), cfg.optim.lr_d),
                loss=build_loss(cfg.loss, lp.lsgan_a, lp.lsgan_b, lp.lsgan_c, cfg.label_smoothing),
                G_ema=copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema > 0 else None)


class GANStep:
    """Algorithm 1 for one config: ``step(batches, i)`` runs ``d_steps`` D updates, ``g_steps`` G updates
    and the EMA update, and returns :class:`StepOut`. ``i`` is the number of steps done before this one
    (it anneals instance noise and times lazy R1)."""

    def __init__(self, cfg: Config, nets: Nets, n_classes: int, device: torch.device, *,
                 distributed: bool = False, one_pass: bool = False, channels_last: bool = False,
                 autocast: Callable[[], Any] = nullcontext) -> None:
        self.cfg, self.nets, self.n_classes, self.device = cfg, nets, n_classes, device
        self.distributed, self.one_pass, self.channels_last, self.autocast = \
            distributed, one_pass, channels_last, autocast
        self.policies = [p.strip() for p in cfg.diffaugment.split(",") if p.strip()]
        self.ada_p: Optional[float] = None  # ADA's augmentation probability (set by the Ada duty); None: always
        self.last_real: Optional[tuple] = None  # (real batch, labels) of the last D update

    def __call__(self, batches, i: int) -> StepOut:
        for _ in range(self.cfg.d_steps):
            d_loss, real_logits, fake_logits, real = self.d_update(batches, i)
        self.nets.D.requires_grad_(False)  # G's update needs gradients through D, not for D's weights
        for _ in range(self.cfg.g_steps):
            g_loss, fake = self.g_update(i)
        self.nets.D.requires_grad_(True)
        if self.nets.G_ema is not None:
            update_ema(self.nets.G_ema, self.nets.G, ema_decay(self.cfg.ema, self.cfg.ema_rampup, i))
        return StepOut(d_loss, g_loss, real_logits, fake_logits, real, fake)

    def d_update(self, batches, i: int):
        """One D update on a fresh real batch and fresh noise: ascend log D(x) + log(1 − D(G(z))) (or the
        configured loss), plus the penalties."""
        cfg, nets, B = self.cfg, self.nets, self.cfg.train.batch_size
        real = batches.next()
        y = batches.labels if self.n_classes else None  # fakes get the real batch's labels
        if cfg.data.augment:
            real = real_augment(real)
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self.autocast():
            fake = self.generate(nets.G if self.distributed else nets.G_train, noise(cfg.model, B, self.device), y)
            fake = fake.float()
        sigma = instance_noise(cfg, i)
        if sigma > 0:  # the same noise level on both sides, so D cannot tell them apart by it
            real = real + sigma * torch.randn_like(real)
            fake = fake + sigma * torch.randn_like(fake)
        lazy_r1 = cfg.r1 > 0 and i % cfg.r1_every == 0
        lazy_r2 = cfg.r2 > 0 and i % cfg.r1_every == 0
        if lazy_r1:
            real.requires_grad_(True)
        if lazy_r2:
            fake.requires_grad_(True)
        judge = self.judge(nets.D_train, y)
        with self.autocast():
            if self.one_pass:  # one forward for both (same arithmetic: D treats rows independently)
                y_both = torch.cat([y, y]) if y is not None else None
                logits = self.judge(nets.D_train, y_both)(torch.cat([real, fake])).float()
                real_logits, fake_logits = logits[: real.shape[0]], logits[real.shape[0]:]
            else:
                real_logits, fake_logits = judge(real).float(), judge(fake).float()
            d_loss = nets.loss.d(real_logits, fake_logits)
            if lazy_r1:
                d_loss = d_loss + cfg.r1 / 2 * cfg.r1_every * r1_penalty(real, real_logits)
            if lazy_r2:  # R2: the same zero-centred penalty at G's samples (Huang et al. 2024)
                d_loss = d_loss + cfg.r2 / 2 * cfg.r1_every * r1_penalty(fake, fake_logits)
            if nets.loss.gradient_penalty:
                d_loss = d_loss + cfg.loss_params.gp_lambda * gradient_penalty(judge, real, fake)
        _descend(nets.opt_d, d_loss, nets.D, cfg.grad_clip)
        if nets.loss.clip_weights:
            with torch.no_grad():
                for p in nets.D.parameters():
                    p.clamp_(-cfg.loss_params.clip, cfg.loss_params.clip)
        self.last_real = (real.detach(), y)  # what a paired G loss (RpGAN) judges G's samples against
        return d_loss, real_logits, fake_logits, real

    def g_update(self, i: int):
        """One G update on fresh noise (and fresh class labels): descend G's loss on D(G(z))."""
        cfg, nets, B = self.cfg, self.nets, self.cfg.train.batch_size
        y = torch.randint(self.n_classes, (B,), device=self.device) if self.n_classes else None
        if nets.loss.paired:  # RpGAN pairs each sample with a real one: the last real batch, with its labels
            real, y = self.last_real
        with self.autocast():
            fake = self.generate(nets.G_train, noise(cfg.model, B, self.device), y)
            sigma = instance_noise(cfg, i)
            if sigma > 0:
                fake = fake + sigma * torch.randn_like(fake)
            fake_logits = self.judge(nets.D_plain, y)(fake).float()
            if nets.loss.paired:
                with torch.no_grad():
                    real_logits = self.judge(nets.D_plain, y)(real).float()
                g_loss = nets.loss.g(fake_logits, real_logits)
            else:
                g_loss = nets.loss.g(fake_logits)
        _descend(nets.opt_g, g_loss, nets.G, cfg.grad_clip)
        return g_loss, fake

    def generate(self, net: nn.Module, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        return net(z, y) if self.n_classes else net(z)

    def judge(self, net: nn.Module, y: Optional[torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """D's logits for a batch, seen through DiffAugment (when on) and given the labels (conditional)."""
        see = (lambda x: diff_augment(x, self.policies, self.ada_p)) if self.policies else (lambda x: x)
        return (lambda x: net(see(x), y)) if y is not None else (lambda x: net(see(x)))


def _descend(opt: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    opt.step()


def instance_noise(cfg: Config, i: int) -> float:
    """σ of the instance noise at step ``i``: linear from ``instance_noise`` to 0 over ``instance_noise_steps``."""
    if cfg.instance_noise <= 0:
        return 0.0
    return cfg.instance_noise * max(0.0, 1.0 - i / cfg.instance_noise_steps)


def ema_decay(ema: float, rampup: float, i: int) -> float:
    """The EMA's decay after step ``i`` (0-based). Fixed ``ema``, or with StyleGAN2-ADA's ramp-up: a
    half-life of min(the fixed decay's, ``rampup`` · steps done) steps, β = 0.5^(1 / half-life). Their
    ``ema_nimg = min(ema_kimg·1000, cur_nimg·ema_rampup)``, ``β = 0.5^(batch / ema_nimg)`` in steps."""
    if rampup <= 0:
        return ema
    half_life = min(math.log(0.5) / math.log(ema), (i + 1) * rampup)
    return 0.5 ** (1.0 / half_life)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model for parameters; buffers (BatchNorm statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def make_optimizer(cfg: Config, params, lr: float) -> torch.optim.Optimizer:
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


def amp_context(cfg: Config, device: torch.device, say: bool) -> Callable[[], Any]:
    """The autocast context of G's and D's forwards for ``cfg.train.amp`` (bf16), or a no-op."""
    if cfg.train.amp != "bf16":
        return nullcontext
    if device.type == "cpu" and not cpu_has_native_bf16():
        if say:
            log.warning("train.amp bf16: this CPU has no native bf16 (AVX512-BF16/AMX), where "
                  "bf16 autocast runs slower than fp32; training in fp32")
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
