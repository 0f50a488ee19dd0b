"""Metrics of generated audio, read by a spoken-digit (or any labelled-clip) classifier on log-mel features.

The classifier (:class:`MelNet`: log-mel spectrogram → three conv blocks → 128-d features → classes) is trained
once per dataset on its training clips, seeded, cached under ``$GANFORGE_CACHE/classifiers`` keyed by a hash of
the clips, and its accuracy on the reference (test) clips is printed and recorded. From it:

* ``accuracy`` (and ``accuracy_per_class``): how often a ``--class K`` sample is read as K (conditional G);
* ``inception_score``: exp E[KL(p(y|x) ‖ p(y))], as WaveGAN reports it (``inception_score_real``: the test
  clips' own, beside it);
* ``fid``: the Fréchet distance of the samples' classifier features to the test clips';
* memorisation: each sample's distance to its nearest training clip in the same features
  (``nn_train_min``, ``nn_train_median``) beside the test clips' own (``nn_train_min_real``,
  ``nn_train_median_real``), and ``closer_than_real``: the share of samples nearer a training clip than the
  nearest of any test clip is.

``--data fsdd``: train = the official train split, reference = the test split (index 0-4). Any other folder:
a seeded tenth of its clips is the reference and the classifier trains on the rest.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

from ..data import default_root, load_audio
from ..data.audio import fsdd
from ..errors import GanforgeError
from ..logs import log
from .features import Extractor, cache_dir, data_hash, fit_epoch
from .image import classifier_score, fid

MEL_VERSION = 1


def mel_filters(n_fft: int, n_mels: int, rate: int) -> torch.Tensor:
    """(n_mels, n_fft / 2 + 1) triangular filters, equally spaced on the HTK mel scale from 0 to rate / 2."""
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    edges = torch.linspace(0, mel(rate / 2), n_mels + 2)
    hz = 700 * (10 ** (edges / 2595) - 1)
    bins = torch.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0)


class MelNet(nn.Module):
    feature_dim = 128

    def __init__(self, classes: int, rate: int, n_fft: int = 256, n_mels: int = 40) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("filters", mel_filters(n_fft, n_mels, rate), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        block = lambda a, b: [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]  # noqa: E731
        self.body = nn.Sequential(nn.BatchNorm2d(1), *block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                                  *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, classes))

    def log_mel(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.reshape(x.shape[0], -1).float(), self.n_fft, self.n_fft // 4, window=self.window,
                          return_complex=True).abs().pow(2)
        return torch.log(self.filters @ spec + 1e-6).unsqueeze(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.log_mel(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _shift(x: torch.Tensor, gen: torch.Generator, most: int) -> torch.Tensor:
    """Each clip moved later by 0..most samples (silence in front): where a word starts is not its class."""
    out = torch.zeros_like(x)
    for i, s in enumerate(torch.randint(0, most + 1, (x.shape[0],), generator=gen).tolist()):
        out[i, :, s:] = x[i, :, : x.shape[-1] - s]
    return out


def train_mel_classifier(x, y, test_x, test_y, rate: int, name: str, epochs: int = 30, seed: int = 0,
                         verbose: bool = True) -> Extractor:
    classes = int(max(y.max(), test_y.max())) + 1
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    try:
        net = MelNet(classes, rate)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        steps = epochs * ((len(y) + 63) // 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
        if verbose:
            log.info(f"training the log-mel classifier on {name} ({len(y)} clips, {epochs} epochs; cached)")
        from tqdm import tqdm

        for _ in tqdm(range(epochs), desc="training the log-mel classifier", unit="epoch", disable=not verbose,
                      leave=False):
            order = torch.randperm(len(y), generator=gen)
            fit_epoch(net, opt, sched, order, 64, lambda idx: (_shift(x[idx], gen, x.shape[-1] // 8), y[idx]))
        net.eval()
        with torch.no_grad():
            acc = (torch.cat([net(test_x[i:i + 256]).argmax(1) for i in range(0, len(test_y), 256)]) == test_y
                   ).float().mean().item()
    finally:
        torch.set_rng_state(state)
    if verbose:
        log.info(f"the log-mel classifier reads {acc:.1%} of {len(test_y)} reference {name} clips right")
    info = {"arch": "MelNet", "classes": classes, "train_clips": len(y), "test_clips": len(test_y),
            "test_accuracy": round(acc, 4), "epochs": epochs, "seed": seed, "version": MEL_VERSION}
    return Extractor(f"classifier:log-mel@{name}", net, info, classes)


def mel_classifier(x, y, test_x, test_y, rate: int, name: str, verbose: bool = True) -> Extractor:
    """The cached log-mel classifier of these clips, trained first when there is none."""
    key = f"mel-{data_hash(x, y)}-{data_hash(test_x, test_y)[:12]}-{rate}-v{MEL_VERSION}"
    path = cache_dir() / "classifiers" / f"{key}.pt"
    classes = int(max(y.max(), test_y.max())) + 1
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = MelNet(classes, rate)
            net.load_state_dict(saved["state"])
            return Extractor(f"classifier:log-mel@{name}", net.eval(), saved["info"], classes)
        except Exception:  # an unreadable cache entry is rebuilt
            pass
    ext = train_mel_classifier(x, y, test_x, test_y, rate, name, verbose=verbose)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"state": ext.net.state_dict(), "info": ext.info}, tmp)
        os.replace(tmp, path)
    except OSError:
        pass
    return ext


@dataclass
class AudioReference:
    extractor: Extractor
    train: Dict[str, torch.Tensor]   # features of the training clips
    test: Dict[str, torch.Tensor]    # features and probs of the reference clips
    test_y: torch.Tensor
    nn_real: torch.Tensor            # each reference clip's distance to its nearest training clip

    def score(self, samples: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Dict[str, object]:
        got = self.extractor(samples)
        nn_fake = torch.cdist(got["features"], self.train["features"]).min(1).values
        out: Dict[str, object] = {
            "fid": round(fid(self.test["features"], got["features"]), 4) if len(self.test_y) > 1 else float("nan"),
            "inception_score": round(classifier_score(got["probs"]), 4),
            "inception_score_real": round(classifier_score(self.test["probs"]), 4),
            "nn_train_min": round(nn_fake.min().item(), 4), "nn_train_median": round(nn_fake.median().item(), 4),
            "nn_train_min_real": round(self.nn_real.min().item(), 4),
            "nn_train_median_real": round(self.nn_real.median().item(), 4),
            "closer_than_real": round((nn_fake < self.nn_real.min()).float().mean().item(), 4),
            "classifier_test_accuracy": self.extractor.info["test_accuracy"]}
        if labels is not None:
            hit = got["probs"].argmax(1) == labels
            per = [round(hit[labels == k].float().mean().item(), 4) for k in range(self.extractor.classes)
                   if bool((labels == k).any())]
            out.update(accuracy=round(hit.float().mean().item(), 4), accuracy_per_class=per)
        return out


def split_reference(data, cfg) -> tuple:
    """(train clips, labels, reference clips, labels): fsdd's official split, or a seeded tenth of a folder."""
    if cfg.name == "fsdd":
        root = Path(cfg.root).expanduser() if cfg.root else default_root()
        test = load_audio(fsdd(root, cfg.download), cfg, "test", "fsdd-test")
        return data.x, data.y, test.x, test.y
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    cut = max(2, len(data) // 10)
    return data.x[perm[cut:]], data.y[perm[cut:]], data.x[perm[:cut]], data.y[perm[:cut]]


def audio_reference(data, cfg, verbose: bool = True) -> AudioReference:
    """The classifier and the features of the training and reference clips of an audio dataset (labelled)."""
    if data.y is None:
        raise GanforgeError(f"audio metrics need labelled clips (sub-folders or <label>_ names); '{cfg.name}' has none")
    x, y, tx, ty = split_reference(data, cfg)
    ext = mel_classifier(x, y, tx, ty, data.rate, cfg.name, verbose)
    train, test = ext(x), ext(tx)
    nn_real = torch.cdist(test["features"], train["features"]).min(1).values
    return AudioReference(ext, train, test, ty, nn_real)
