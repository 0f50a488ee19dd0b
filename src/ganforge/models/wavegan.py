"""WaveGAN (Donahue, McAuley and Puckette, ICLR 2019): DCGAN flattened to one dimension, for raw audio.

G: z → Linear to 16d × (L / 1024) → ReLU → five transposed 1-D convolutions (kernel 25, stride 4), widths
16d → 8d → 4d → 2d → d → 1, ReLU between, tanh at the end: L samples (16,384 in the paper; 8,192 here at
8 kHz, one second). D mirrors it: five 1-D convolutions (kernel 25, stride 4), LeakyReLU(0.2), phase shuffle
(each sample's feature map shifted by a random −n…n, reflected at the edges) after all but the last, then
Linear to one logit. The paper: d = 64, n = 2, WGAN-GP, 5 D steps, Adam 1e-4 betas (0.5, 0.9), batch 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLINGS = 5  # ×4 each: 1024


def base_length(length: int) -> int:
    """The length of G's first feature map (and D's last): length / 4⁵, which must be a whole number ≥ 1."""
    if length % 4 ** UPSAMPLINGS or length < 4 ** UPSAMPLINGS:
        raise ValueError(f"WaveGAN needs clips of a multiple of {4 ** UPSAMPLINGS} samples (8192 at 8 kHz, "
                         f"16384 at 16 kHz), got {length}")
    return length // 4 ** UPSAMPLINGS


class PhaseShuffle(nn.Module):
    """Shift each sample's feature map in time by a random integer in [−n, n], reflect-padded."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n == 0:
            return x
        length = x.shape[-1]
        shift = torch.randint(-self.n, self.n + 1, (x.shape[0], 1, 1), device=x.device)
        padded = F.pad(x, (self.n, self.n), mode="reflect")
        index = (torch.arange(length, device=x.device).view(1, 1, -1) + self.n - shift).expand(-1, x.shape[1], -1)
        return padded.gather(2, index)


class WaveGANGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, length: int = 8192, channels: int = 1, d: int = 64) -> None:
        super().__init__()
        self.z_dim, self.d, self.base, self.out_shape = z_dim, d, base_length(length), (channels, length)
        self.fc = nn.Linear(z_dim, 16 * d * self.base)
        widths = [16 * d, 8 * d, 4 * d, 2 * d, d, channels]
        layers = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [nn.ReLU(), nn.ConvTranspose1d(a, b, 25, stride=4, padding=11, output_padding=1)]
        self.net = nn.Sequential(*layers, nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], 16 * self.d, self.base))


class WaveGANDiscriminator(nn.Module):
    flat_input = False  # the projection D (conditional) feeds it clips, not flattened vectors

    def __init__(self, length: int = 8192, channels: int = 1, d: int = 64, phase_shuffle: int = 2,
                 leak: float = 0.2) -> None:
        super().__init__()
        widths = [channels, d, 2 * d, 4 * d, 8 * d, 16 * d]
        layers = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [nn.Conv1d(a, b, 25, stride=4, padding=11), nn.LeakyReLU(leak)]
            if i < UPSAMPLINGS - 1 and phase_shuffle:
                layers.append(PhaseShuffle(phase_shuffle))
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(16 * d * base_length(length), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])
