"""A GAN for raw audio in the short-time Fourier domain: SpecGAN's idea (Donahue et al. 2019: a 2-D DCGAN on
spectrograms) made end to end, so that G still emits waveforms and D still reads them.

G: z → Linear to 8d × 8 × 4 → four ×2 transposed 2-D convolutions (kernel 4, stride 2, BatchNorm, ReLU),
widths 8d → 4d → 2d → d → d/2 → a 3 × 3 convolution to 2: the real and imaginary STFT coefficients on a grid
of ``n_fft / 2`` frequencies × ``length / hop`` frames (128 × 64 for 8,192 samples; the Nyquist bin and the last
frame are zero) → the inverse STFT (Hann window, hop n_fft / 2) → tanh: a clip of ``length`` samples. D: the
STFT of the clip (the same window) → log(power + 0.01) → four 2-D convolutions (kernel 4, stride 2,
LeakyReLU), widths 1 → d → 2d → 4d → 8d → Linear to one logit. The 0.01 floor bounds D's gradient in silence
(FSDD clips are half padding): with 1e-4, lazy R1 held D at D(x) = 0.5 from step 50 on.
Every step is differentiable, so losses and gradient penalties act on waveforms exactly as
for WaveGAN, and the classifier-based audio metrics read the same clips.
"""

from __future__ import annotations

import torch
from torch import nn

N_FFT = 256
UPSAMPLINGS = 4  # ×2 each


def grid(length: int, n_fft: int = N_FFT) -> tuple:
    """(frequencies, frames) of G's STFT grid, each a multiple of 2⁴; else a ValueError naming the lengths."""
    hop = n_fft // 2
    freqs, frames = n_fft // 2, length // hop
    if length % hop or frames % 2 ** UPSAMPLINGS or frames < 2 ** UPSAMPLINGS:
        raise ValueError(f"model.arch stftgan needs clips of a multiple of {hop * 2 ** UPSAMPLINGS} samples "
                         f"(8192 at 8 kHz), got {length}")
    return freqs, frames


class LogSpectrogram(nn.Module):
    """(N, 1, L) clips → (N, 1, n_fft / 2, L / hop) log power of their STFT (Nyquist bin and last frame dropped)."""

    def __init__(self, n_fft: int = N_FFT) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.reshape(x.shape[0], -1), self.n_fft, self.n_fft // 2, window=self.window,
                          return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        return torch.log(power[:, None, :-1, :-1] + 1e-2) / 4.0


class STFTGenerator(nn.Module):
    def __init__(self, z_dim: int = 100, length: int = 8192, d: int = 32, n_fft: int = N_FFT) -> None:
        super().__init__()
        self.z_dim, self.length, self.n_fft, self.out_shape = z_dim, length, n_fft, (1, length)
        freqs, frames = grid(length, n_fft)
        self.base = (freqs // 2 ** UPSAMPLINGS, frames // 2 ** UPSAMPLINGS)
        widths = [8 * d, 4 * d, 2 * d, d, max(d // 2, 1)]
        self.fc = nn.Linear(z_dim, widths[0] * self.base[0] * self.base[1])
        layers = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Conv2d(widths[-1], 2, 3, 1, 1))
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], -1, *self.base)
        coef = nn.functional.pad(self.net(h), (0, 1, 0, 1))  # the zero Nyquist bin and last frame
        spec = torch.complex(coef[:, 0], coef[:, 1])
        wave = torch.istft(spec, self.n_fft, self.n_fft // 2, window=self.window, length=self.length)
        return torch.tanh(wave)[:, None]


class STFTDiscriminator(nn.Module):
    flat_input = False  # the projection D (conditional) feeds it clips, not flattened vectors

    def __init__(self, length: int = 8192, d: int = 32, leak: float = 0.2, n_fft: int = N_FFT) -> None:
        super().__init__()
        freqs, frames = grid(length, n_fft)
        widths = [1, d, 2 * d, 4 * d, 8 * d]
        layers = [LogSpectrogram(n_fft)]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(leak)]
        side = 2 ** UPSAMPLINGS
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(8 * d * (freqs // side) * (frames // side), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).reshape(x.shape[0])
