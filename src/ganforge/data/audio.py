"""Audio: a folder of WAV files → mono clips of ``data.audio_len`` samples at one rate, in [-1, 1], (N, 1, L).

WAVs are read with the standard library (8/16/24/32-bit PCM) or, for other encodings (float), ``soundfile``
when it is installed. Stereo is mixed down to mono and other rates are resampled (band-limited, by FFT) to
``data.sample_rate`` (null: the folder's most common rate); the info of the data says how many of each. A
clip is cut to its first ``audio_len`` samples or padded with silence at its end (WaveGAN's loader does the
same). Labels: a folder holding only sub-folders gives a class per sub-folder (as image folders do);
otherwise file names ``<label>_<rest>.wav`` (the Free Spoken Digit Dataset's ``{digit}_{speaker}_{i}.wav``)
give the label before the first underscore when every file has one and there are two or more. Zero-length,
silent and unreadable files are one warning each; a folder with no usable clip is one error.
"""

from __future__ import annotations

import os
import wave
from collections import Counter
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..errors import GanforgeError
from ..logs import log

EXTENSIONS = (".wav",)


def audio_files(root: Path) -> List[Path]:
    """WAV files under ``root``, sorted; symlinked folders are not followed (no loops), hidden ones skipped."""
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(folder) / f for f in files if f.lower().endswith(EXTENSIONS) and not f.startswith(".")]
    return sorted(out)


def read_wav(path: Path) -> Tuple[np.ndarray, int, int]:
    """(samples as float32 in [-1, 1], shape (frames, channels); rate; channels). Raises ValueError with the
    reason when the file cannot be read."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(frames)
    except (wave.Error, EOFError, OSError) as e:
        try:
            import soundfile
        except ImportError:
            raise ValueError(f"not a PCM WAV the standard library reads ({e}); pip install soundfile for "
                             f"other encodings") from None
        try:
            x, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        except Exception as e2:  # soundfile raises its own error types for broken files
            raise ValueError(str(e2).splitlines()[0]) from None
        return x, int(rate), x.shape[1]
    if width == 1:  # 8-bit WAV is unsigned
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        b = np.frombuffer(raw[: len(raw) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / 2 ** 23
    elif width in (2, 4):
        x = np.frombuffer(raw[: len(raw) // width * width], f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
    else:
        raise ValueError(f"{8 * width}-bit samples are not supported")
    return x[: len(x) // channels * channels].reshape(-1, channels), rate, channels


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling of a 1-D signal by FFT (zero-padding or truncating its spectrum)."""
    n = max(1, round(len(x) * target / rate))
    spec = np.fft.rfft(x)
    keep = n // 2 + 1
    out = np.zeros(keep, dtype=spec.dtype)
    out[: min(keep, len(spec))] = spec[: min(keep, len(spec))]
    return (np.fft.irfft(out, n) * (n / len(x))).astype(np.float32)


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    return x[:length] if len(x) >= length else np.pad(x, (0, length - len(x)))


def _labels(root: Path, files: List[Path]) -> Tuple[Optional[List[int]], List[str]]:
    tops = [p.relative_to(root).parts for p in files]
    if all(len(t) > 1 for t in tops) and not any(p.is_file() for p in root.iterdir()):
        names = sorted({t[0] for t in tops})
    else:
        stems = [p.stem.split("_", 1) for p in files]
        if not all(len(s) == 2 for s in stems):
            return None, []
        names = sorted({s[0] for s in stems}, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
        tops = [(s[0],) for s in stems]
    if len(names) < 2:
        return None, []
    index = {n: i for i, n in enumerate(names)}
    return [index[t[0]] for t in tops], names


def load_audio_folder(root: Path, length: int, rate: Optional[int] = None, split: Optional[str] = None
                      ) -> Tuple[torch.Tensor, Optional[torch.Tensor], dict]:
    """(clips (N, 1, length) in [-1, 1], labels or None, info); ``split`` (train or test): the FSDD split."""
    files = audio_files(root)
    if split is not None:
        files = fsdd_split(files, split)
    if not files:
        raise GanforgeError(f"no WAV files under {root}")
    labels, names = _labels(root, files)
    read, skipped = [], []
    for i, f in enumerate(files):
        try:
            x, r, ch = read_wav(f)
        except ValueError as e:
            skipped.append(f"{f}: {e}")
            continue
        if x.shape[0] == 0:
            skipped.append(f"{f}: no samples")
        elif not np.abs(x).max() > 0:
            skipped.append(f"{f}: silent (every sample is 0)")
        else:
            read.append((i, x.mean(1), r, ch))
    for problem in skipped:
        log.warning(f"skipping {problem}")
    if not read:
        raise GanforgeError(f"no usable WAV file under {root} ({len(skipped)} unreadable, empty or silent)")
    target = rate or Counter(r for _, _, r, _ in read).most_common(1)[0][0]
    clips = [fit_length(x if r == target else resample(x, r, target), length) for _, x, r, _ in read]
    x = torch.from_numpy(np.stack(clips)).clamp_(-1, 1).unsqueeze(1)
    y = torch.tensor([labels[i] for i, _, _, _ in read]) if labels is not None else None
    resampled, mixed = sum(r != target for _, _, r, _ in read), sum(ch > 1 for _, _, _, ch in read)
    if resampled or mixed:
        log.info(f"note: {resampled} clip(s) resampled to {target} Hz, {mixed} multi-channel clip(s) mixed down "
                 f"to mono")
    info = {"source": str(root), "kind": "audio", "clips": len(read), "sample_rate": target, "audio_len": length,
            "classes": names if labels is not None else [], "resampled": resampled,
            "mixed_down": mixed, "skipped_count": len(skipped), "skipped": skipped,
            "cut": sum(len(x) > length for _, x, _, _ in read)}
    return x, y, info


FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/heads/master.zip"


def fsdd_split(files: List[Path], split: str) -> List[Path]:
    """The Free Spoken Digit Dataset's official split of ``{digit}_{speaker}_{index}.wav``: index 0-4 of each
    speaker and digit is the test set (300 clips), the rest train (2,700)."""
    def index(p: Path) -> int:
        try:
            return int(p.stem.rsplit("_", 1)[1])
        except (IndexError, ValueError):
            return -1
    return [f for f in files if (0 <= index(f) <= 4) == (split == "test")]


def fsdd(root: Path, download: bool = True) -> Path:
    """``ROOT/free-spoken-digit-dataset/recordings`` (3,000 WAVs at 8 kHz), downloaded from GitHub when missing
    and ``download`` allows; offline and missing, one sentence says where to put it."""
    folder = root / "free-spoken-digit-dataset" / "recordings"
    if not folder.is_dir() and download:
        import io
        import urllib.request
        import zipfile

        try:
            with urllib.request.urlopen(FSDD_URL, timeout=60) as r:
                archive = zipfile.ZipFile(io.BytesIO(r.read()))
            folder.mkdir(parents=True, exist_ok=True)
            for name in archive.namelist():
                if "/recordings/" in name and name.endswith(".wav"):
                    (folder / Path(name).name).write_bytes(archive.read(name))
        except Exception:  # network errors come in many types; what is missing is reported below
            pass
    if not folder.is_dir() or not any(folder.glob("*.wav")):
        raise GanforgeError(f"fsdd not found offline: put the WAV files of Jakobovski/free-spoken-digit-dataset's "
                            f"recordings/ in {folder}, or give any folder of WAV files with --data PATH")
    return folder


def is_audio_folder(root: Path) -> bool:
    """A folder with WAV files and no images: audio."""
    from .folder import EXTENSIONS as IMAGES

    wav = False
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            low = f.lower()
            if low.endswith(IMAGES):
                return False
            wav = wav or low.endswith(EXTENSIONS)
    return wav


def write_wav(x: torch.Tensor, rate: int, f) -> None:
    """One clip (L,) or (1, L) in [-1, 1] as 16-bit PCM mono WAV into the open binary file ``f``."""
    pcm = (x.detach().float().cpu().reshape(-1).clamp(-1, 1).numpy() * 32767).round().astype("<i2")
    with wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())
