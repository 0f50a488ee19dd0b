"""Generators that run anywhere: ONNX, TorchScript and safetensors exports, each verified before it is written.

The exported model is :class:`Sampler`: G (the EMA of its weights where the run kept one, BatchNorm in
eval mode) with the data's inverse preprocessing baked in, so its output is ready to save — images
N×C×H×W in [0, 1], or toy data N×D in the data's units (the convention of ``ganforge sample --out x.npy``).
Inputs: ``z`` (N×z_dim float32, from the distribution named in the metadata) and, for conditional
runs, ``y`` (N int64 class ids). The batch axis is dynamic.

* ``.onnx`` — ONNX opset 18 through torch.onnx's ``dynamo=True`` exporter (torch.export, the exporter
  PyTorch maintains); metadata in ``metadata_props``; checked with onnxruntime. Needs the ``onnx`` extra.
* ``.pt`` — TorchScript by ``torch.jit.trace``: the generators have no data-dependent control flow, so a
  trace is exact, and ``torch.jit.load`` runs it from Python or C++ (libtorch) without ganforge's code,
  which ``torch.export``'s ``.pt2`` cannot offer to C++ without AOTInductor. Metadata in the extra file
  ``ganforge.json``; checked with ``torch.jit.load``.
* ``.safetensors`` — the weights and config, for ``ganforge.load`` and ``ganforge sample``.

Every export runs the written bytes on a fixed batch and compares with ganforge's own sampling; a max
abs difference above 1e-4 refuses to write (:class:`~ganforge.errors.ExportMismatch`, exit 1).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors
from torch import nn

from ._version import __version__
from .api import LoadedGAN, load
from .checkpoint import write_atomic
from .data import to_unit
from .errors import ExportMismatch, GanforgeError
from .models import build_generator

OPSET = 18
TOLERANCE = 1e-4
FORMATS = (".onnx", ".pt", ".safetensors")
ONNX_EXTRA = "pip install 'ganforge[onnx]'"


class Sampler(nn.Module):
    """G with the inverse preprocessing baked in: ``forward(z[, y])`` → images in [0, 1] or toy data."""

    def __init__(self, G: nn.Module, image: bool, conditional: bool) -> None:
        super().__init__()
        self.G, self.image, self.conditional = G.eval(), image, conditional

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.G(z, y) if self.conditional else self.G(z)
        return to_unit(x) if self.image else x


def metadata(gan: LoadedGAN) -> Dict[str, str]:
    """What a user of the exported file needs to know, as strings."""
    config = json.dumps(gan.config.to_dict(), sort_keys=True)
    return {
        "producer": "ganforge", "ganforge_version": __version__, "kind": "image" if gan.is_image else "toy",
        "z_dim": str(gan.z_dim), "z_dist": gan.config.model.z_dist,
        "z_dist_note": "N(0, I)" if gan.config.model.z_dist == "normal" else "U(0, 1) per coordinate",
        "inputs": "z,y" if gan.n_classes else "z", "classes": json.dumps(gan.classes),
        "shape": json.dumps(list(gan.data_shape)),
        "output": "images N x C x H x W in [0, 1]" if gan.is_image else "samples N x D in data units",
        "step": str(gan.step), "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "config": config,
    }


def export(source: Union[str, Path], out: Union[str, Path]) -> Path:
    """Write the generator of a run dir or checkpoint (EMA weights when present) as ONNX (``.onnx``),
    TorchScript (``.pt``) or ``.safetensors`` (which :func:`ganforge.load` and ``ganforge sample`` read),
    verified against ganforge's own sampling before it is written."""
    return export_verified(source, out)[0]


def export_verified(source: Union[str, Path], out: Union[str, Path], seed: int = 0) -> Tuple[Path, float]:
    """Write the generator of a run dir or checkpoint to ``out`` (.onnx, .pt or .safetensors), verified;
    return the path and the max abs difference from ganforge's own sampling on a fixed batch."""
    out = Path(out)
    if out.suffix not in FORMATS:
        raise GanforgeError(f"--out must end in {', '.join(FORMATS)} (ONNX, TorchScript, safetensors); "
                            f"got '{out.name}'")
    if out.suffix == ".onnx":
        _require_onnx()
    gan = load(source)
    z, y = _check_batch(gan, seed)
    want = gan.generate(z, y)  # ganforge's own sampling path, then its output convention
    want = to_unit(want) if gan.is_image else want
    data, run = {".onnx": _onnx, ".pt": _torchscript, ".safetensors": _safetensors}[out.suffix](gan, z, y)
    got = run(data, z, y)
    diff = float((torch.as_tensor(got) - want).abs().max())
    if not diff <= TOLERANCE:
        raise ExportMismatch(f"the exported {out.suffix} model differs from ganforge's sampling by {diff:.3g} "
                             f"(max abs, tolerance {TOLERANCE:g}); nothing was written")
    write_atomic(out, lambda f: f.write(data))
    return out, diff


def _check_batch(gan: LoadedGAN, seed: int):
    """A fixed batch of 7 (odd, not the trace's batch) noise vectors and labels for the verification."""
    z = gan.noise(7, seed)
    y = torch.arange(7) % gan.n_classes if gan.n_classes else None
    return z, y


def _inputs(gan: LoadedGAN, z, y) -> tuple:
    return (z, y) if gan.n_classes else (z,)


def _onnx(gan: LoadedGAN, z, y) -> Tuple[bytes, Callable]:
    import onnxruntime as ort

    sampler = Sampler(gan.generator, gan.is_image, bool(gan.n_classes))
    example = _inputs(gan, torch.cat([z, z]), torch.cat([y, y]) if y is not None else None)  # batch 14
    batch = torch.export.Dim("batch", min=1)
    names = ["z", "y"][: len(example)]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(sampler, example, input_names=names, output_names=["x"], opset_version=OPSET,
                                    dynamo=True, dynamic_shapes={n: {0: batch} for n in names}, verbose=False)
    proto = program.model_proto
    for key, value in metadata(gan).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    data = proto.SerializeToString()

    def run(blob: bytes, z, y):
        session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
        feed = {"z": z.numpy().astype(np.float32)}
        if y is not None:
            feed["y"] = y.numpy().astype(np.int64)
        return session.run(None, feed)[0]
    return data, run


def _torchscript(gan: LoadedGAN, z, y) -> Tuple[bytes, Callable]:
    sampler = Sampler(gan.generator, gan.is_image, bool(gan.n_classes))
    example = _inputs(gan, torch.cat([z, z]), torch.cat([y, y]) if y is not None else None)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(sampler, example)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # torch >= 2.9 calls TorchScript deprecated; libtorch still loads it
        warnings.simplefilter("ignore")
        torch.jit.save(traced, buf, _extra_files={"ganforge.json": json.dumps(metadata(gan))})

    def run(blob: bytes, z, y):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model = torch.jit.load(io.BytesIO(blob))
            return model(*_inputs(gan, z, y))
    return buf.getvalue(), run


def _safetensors(gan: LoadedGAN, z, y) -> Tuple[bytes, Callable]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in gan.generator.state_dict().items()}
    meta = {"format": "ganforge-generator", "config": json.dumps(gan.config.to_dict()),
            "data_shape": json.dumps(list(gan.data_shape)), "step": str(gan.step),
            "n_classes": str(gan.n_classes), "classes": json.dumps(gan.classes),
            "alphabet": json.dumps(gan.alphabet), "sample_rate": str(gan.sample_rate)}

    def run(blob: bytes, z, y):
        G = build_generator(gan.config.model, gan.data_shape, gan.n_classes)
        G.load_state_dict(load_safetensors_bytes(blob))
        return Sampler(G, gan.is_image, bool(gan.n_classes))(z, y).detach()
    return save_safetensors(tensors, metadata=meta), run


def _require_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise GanforgeError(f"ONNX export needs {', '.join(missing)}: {ONNX_EXTRA}")
