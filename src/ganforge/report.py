"""Pictures of a run: sample grids, spectrogram grids (audio), toy plots, training curves, animations, latent walks;
text samples as lines."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import save_image

from . import metric_spec
from .checkpoint import write_atomic
from .data import to_unit
from .errors import GanforgeError


def save_grid(images: torch.Tensor, path: Path, nrow: int = 0) -> Path:
    """Save images in [-1, 1] (N, C, H, W) as one PNG grid, ``nrow`` per row (default: square)."""
    nrow = nrow or max(1, math.ceil(math.sqrt(images.shape[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: save_image(to_unit(images.detach().float().cpu()), f, nrow=nrow,
                                            padding=2, format="png"))
    return path


def write_lines(lines, path: Path) -> Path:
    """Text samples, one per line (UTF-8; a newline inside a sample is shown as ``⏎``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line.replace("\n", "\u23ce") + "\n" for line in lines)
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
    return path


def log_spectrogram(x: torch.Tensor, n_fft: int = 256) -> torch.Tensor:
    """|STFT| in dB of one clip (L,): (n_fft / 2 + 1, frames), Hann window, hop n_fft / 4."""
    spec = torch.stft(x.float(), n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True)
    return 20 * torch.log10(spec.abs() + 1e-5)


def save_audio_grid(clips: torch.Tensor, rate: int, path: Path, labels=None, max_clips: int = 16) -> Path:
    """The first ``max_clips`` clips (N, 1, L) in [-1, 1] as a grid of log spectrograms, each under its
    waveform (four a row); ``labels`` (names per clip) title them."""
    plt = _pyplot()
    clips = clips.detach().float().cpu()[:max_clips]
    n = clips.shape[0]
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(3 * cols, 2.4 * rows), dpi=90, squeeze=False,
                             gridspec_kw={"height_ratios": [1, 2] * rows})
    seconds = clips.shape[-1] / rate
    for i in range(rows * cols):
        wave_ax, spec_ax = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        for ax in (wave_ax, spec_ax):
            ax.set_xticks([])
            ax.set_yticks([])
        if i >= n:
            wave_ax.axis("off")
            spec_ax.axis("off")
            continue
        x = clips[i].reshape(-1)
        wave_ax.plot(torch.linspace(0, seconds, len(x)).numpy(), x.numpy(), lw=0.4, color="tab:blue")
        wave_ax.set_xlim(0, seconds)
        wave_ax.set_ylim(-1, 1)
        if labels is not None:
            wave_ax.set_title(str(labels[i]), fontsize=8)
        spec_ax.imshow(log_spectrogram(x).clamp(min=-80).numpy(), origin="lower", aspect="auto", cmap="magma",
                       extent=(0, seconds, 0, rate / 2000))
    fig.tight_layout(pad=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path


def save_toy_plot(samples: torch.Tensor, target, path: Path, title: str = "",
                  d_curve: "tuple | None" = None, label: str = "generated") -> Path:
    """1-D: histogram of the samples over the target density (and D(x) when given as (xs, probs));
    2-D: scatter of the samples over the mode centres."""
    plt = _pyplot()
    x = samples.detach().double().cpu()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    if target.dim == 1:
        m, s = target.means[:, 0], target.stds
        lo = min((m - 4 * s).min().item(), x.quantile(0.001).item())
        hi = max((m + 4 * s).max().item(), x.quantile(0.999).item())
        t = torch.linspace(lo, hi, 400)
        ax.hist(x.flatten().clamp(lo, hi).numpy(), bins=80, range=(lo, hi), density=True, alpha=0.6,
                color="tab:blue", label=label)
        ax.plot(t.numpy(), target.pdf(t).numpy(), color="black", lw=1.5, label="target density")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        if d_curve is not None:
            ax2 = ax.twinx()
            ax2.plot(d_curve[0].numpy(), d_curve[1].numpy(), color="tab:red", lw=1, label="D(x)")
            ax2.set_ylim(0, 1)
            ax2.set_ylabel("D(x)", color="tab:red")
        ax.legend(loc="upper left", fontsize=8)
    else:
        c = target.means.numpy()
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.3, color="tab:blue", label=label)
        ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="black", label="mode centres")
        pad = 1.0
        ax.set_xlim(c[:, 0].min() - pad, c[:, 0].max() + pad)
        ax.set_ylim(c[:, 1].min() - pad, c[:, 1].max() + pad)
        ax.set_aspect("equal")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    _pyplot().close(fig)
    return path


def smooth(values, weight: float = 0.0) -> list:
    """Exponential moving average with TensorBoard's debiasing (the first points are not pulled to 0).
    ``weight`` 0 picks one from the length: about 1/20 of the curve."""
    n = len(values)
    if n == 0:
        return []
    weight = weight or min(0.98, max(0.0, 1.0 - 20.0 / n))
    out, last, debias = [], 0.0, 1.0
    for v in values:
        last = weight * last + (1 - weight) * v
        debias *= weight
        out.append(last / (1 - debias) if debias < 1 else v)
    return out


def plot_curves(metrics: list, path: Path, title: str = "") -> Path:
    """``curves.png`` from a run's ``metrics.jsonl`` lines: G's and D's losses (smoothed, raw faint),
    D(x) and D(G(z)), and one panel per evaluated metric, all over training steps; diagnostics events
    (and NaN rollbacks) as dotted vertical lines."""

    train = [m for m in metrics if m.get("kind") == "train"]
    evals = [m for m in metrics if m.get("kind") == "eval"]
    events = [m for m in metrics if m.get("kind") == "event" and m.get("event") != "config_warning"]
    if not train:
        raise GanforgeError("nothing to plot yet: the run has logged no training lines in metrics.jsonl")
    keys = []
    for m in evals:
        keys += [k for k, v in m.items() if metric_spec.is_score(k) and k not in keys
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    plt = _pyplot()
    panels = 2 + len(keys)
    cols = 2 if panels > 1 else 1
    rows = math.ceil(panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.2 * rows), dpi=100, squeeze=False)
    axes = axes.flatten()
    steps = [m["step"] for m in train]

    ax = axes[0]
    for key, label, color in (("d_loss", "D loss", "tab:red"), ("g_loss", "G loss", "tab:blue")):
        raw = [m[key] for m in train]
        ax.plot(steps, raw, color=color, alpha=0.2, lw=0.8)
        ax.plot(steps, smooth(raw), color=color, lw=1.8, label=f"{label} (smoothed)")
    ax.set_title("losses")
    ax.set_ylabel("loss")
    ax = axes[1]
    ax.plot(steps, [m["d_real"] for m in train], color="tab:green", lw=1.2, label="D(x), real")
    ax.plot(steps, [m["d_fake"] for m in train], color="tab:purple", lw=1.2, label="D(G(z)), generated")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("D's mean output (sigmoid of its logit)")
    ax.set_ylabel("probability")
    for ax, key in zip(axes[2:], keys):
        pts = [(m["step"], m[key]) for m in evals if isinstance(m.get(key), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.4, color="tab:orange")
        ax.set_title(metric_spec.label(key))
        ax.set_ylabel(key)
        if key == "modes_covered":
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:panels]:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        for e in events:
            ax.axvline(e["step"], color="black", lw=0.8, ls=":", alpha=0.6)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].legend(fontsize=8, loc="upper right")
    for ax in axes[panels:]:
        ax.axis("off")
    if title:
        fig.suptitle(title + ("   (dotted lines: diagnostics events)" if events else ""), fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


def _label(img, text: str):
    """The picture with a white strip on top carrying ``text``."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=max(12, img.width // 30))
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        font = ImageFont.load_default()
    h = (font.getbbox("Step 0123456789")[3] if hasattr(font, "getbbox") else 11) + 8
    out = Image.new("RGB", (img.width, img.height + h), "white")
    out.paste(img.convert("RGB"), (0, h))
    ImageDraw.Draw(out).text((6, 4), text, fill="black", font=font)
    return out


def write_animation(frames: list, path: Path, fps: float = 4.0, hold_last: int = 3) -> Path:
    """PIL images → an animated GIF (looping; the last frame shown ``hold_last`` times as long) or, for
    ``.mp4``, a video through imageio's ffmpeg plugin (when installed)."""

    if not frames:
        raise GanforgeError("nothing to animate: no frames")
    size = frames[0].size
    frames = [f.convert("RGB") if f.size == size else f.convert("RGB").resize(size) for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        ms = int(round(1000 / fps))
        durations = [ms] * (len(frames) - 1) + [ms * hold_last]
        write_atomic(path, lambda f: frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:],
                                                    duration=durations, loop=0))
        return path
    if suffix == ".mp4":
        try:
            import imageio.v3 as iio
            import numpy as np
        except ImportError:
            raise GanforgeError("an .mp4 needs imageio and imageio-ffmpeg (pip install imageio imageio-ffmpeg); "
                                "or write a .gif") from None
        even = [(f.width - f.width % 2, f.height - f.height % 2) for f in frames[:1]][0]  # H.264 wants even sizes
        arr = np.stack([np.asarray(f.crop((0, 0) + even)) for f in frames + [frames[-1]] * (hold_last - 1)])
        try:
            data = iio.imwrite("<bytes>", arr, extension=".mp4", fps=fps)
        except Exception as e:  # imageio without its ffmpeg plugin raises its own error types
            raise GanforgeError(f"cannot write {path.name}: {str(e).splitlines()[0]} "
                                f"(pip install imageio-ffmpeg, or write a .gif)") from None
        write_atomic(path, lambda f: f.write(data))
        return path
    raise GanforgeError(f"--out must end in .gif or .mp4, got '{path.name}'")


def grid_step(path: Path) -> int:
    """The training step of a ``samples/step-NNNNNNN.png`` picture."""
    return int(path.stem.split("-")[-1])


def progress_frames(grids: list) -> list:
    """The run's fixed-noise pictures (``samples/step-*.png``), each labelled with its step."""
    from PIL import Image

    frames = []
    for p in grids:
        with Image.open(p) as im:
            frames.append(_label(im, f"step {grid_step(p)}"))
    return frames


def interpolation_pictures(x: torch.Tensor, target=None, animated: bool = False) -> list:
    """Latent walks ``x`` (rows, steps, ...) as PIL images: one grid (a row per walk, a column per step)
    or, ``animated``, one frame per step going there and back. Images come in [0, 1]; toy samples are
    drawn over the data's modes (``target``, a Mixture): 2-D as paths, 1-D as G(z_t) against t."""
    from PIL import Image
    from torchvision.utils import make_grid

    rows, steps = x.shape[:2]
    if x.dim() > 3:  # images
        def picture(batch, nrow):
            g = make_grid(batch.float().clamp(0, 1), nrow=nrow, padding=2)
            return Image.fromarray((g.permute(1, 2, 0) * 255).round().byte().numpy())
        if not animated:
            return [picture(x.flatten(0, 1), steps)]
        order = list(range(steps)) + list(range(steps - 2, 0, -1))
        return [_label(picture(x[:, t], max(1, math.ceil(math.sqrt(rows)))), f"t = {t / (steps - 1):.2f}")
                for t in order]
    plt = _pyplot()
    t = torch.linspace(0, 1, steps)
    out = []
    for k in (range(steps) if animated else [None]):
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        colors = plt.cm.viridis(torch.linspace(0, 1, rows).numpy())
        if x.shape[-1] == 1:
            for r in range(rows):
                ax.plot(t.numpy(), x[r, :, 0].numpy(), color=colors[r], lw=1.2, alpha=0.4 if k is not None else 1)
                if k is not None:
                    ax.plot([t[k].item()], [x[r, k, 0].item()], "o", color=colors[r])
            if target is not None:
                for m in target.means[:, 0].tolist():
                    ax.axhline(m, color="black", lw=0.8, ls="--")
            ax.set_xlabel("t (from z0 to z1)")
            ax.set_ylabel("G(z_t)")
        else:
            if target is not None:
                c = target.means.numpy()
                ax.scatter(c[:, 0], c[:, 1], s=30, marker="x", color="black", label="mode centres")
            for r in range(rows):
                ax.plot(x[r, :, 0].numpy(), x[r, :, 1].numpy(), "-", color=colors[r], lw=1,
                        alpha=0.4 if k is not None else 1)
                ax.plot(x[r, :1, 0].numpy(), x[r, :1, 1].numpy(), "o", ms=3, color=colors[r])
                if k is not None:
                    ax.plot([x[r, k, 0].item()], [x[r, k, 1].item()], "o", ms=6, color=colors[r])
            ax.set_aspect("equal")
        ax.set_title(f"latent walks: {rows} paths, {steps} steps" + (f", t = {t[k].item():.2f}" if k is not None else ""),
                     fontsize=9)
        fig.tight_layout()
        fig.canvas.draw()
        out.append(Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba()).convert("RGB"))
        plt.close(fig)
    return out if not animated else out + out[-2:0:-1]
