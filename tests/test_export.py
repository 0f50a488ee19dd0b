"""Exports: ONNX, TorchScript and safetensors for every kind of generator, verified; the torch-free sampler."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import resolve_config
from ganforge.data import to_unit
from ganforge.errors import ExportMismatch
from ganforge.exports import OPSET, export_verified

ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'ganforge[onnx]')")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'ganforge[onnx]')")

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"train.batch_size": 8, "train.epochs": None, "train.steps": 1, "log.progress": False, "eval.every": "off"}
# one run of each kind of generator ganforge builds
ARCHS = {
    "mlp-batchnorm": ("mnist-mlp-bn", {"data.limit": 64}),
    "mlp-conditional": ("mnist-mlp-tuned", {"data.limit": 64, "conditional": True}),
    "dcgan-32": ("mnist-dcgan", {"data.limit": 64, "model.g_features": 4, "model.d_features": 4,
                                 "conditional": False}),
    "dcgan-32-conditional": ("mnist-dcgan", {"data.limit": 64, "model.g_features": 4, "model.d_features": 4,
                                             "conditional": True}),
    "dcgan-64-rgb": ("dcgan", {"model.g_features": 4, "model.d_features": 4}),
    "dcgan-128-rgb": ("dcgan", {"model.g_features": 2, "model.d_features": 2, "data.image_size": 128}),
    "toy-2d": ("ring-8", {}),
    "toy-1d": ("gaussian-1d", {}),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from ganforge.data.examples import write_example_folder
    root = tmp_path_factory.mktemp("export-runs")
    photos = write_example_folder(root / "photos")
    out = {}
    for name, (preset, sets) in ARCHS.items():
        extra = {"data.name": str(photos)} if preset == "dcgan" else {}
        cfg = resolve_config(preset, overrides={**QUICK, **extra, **sets})
        out[name] = ganforge.train(cfg, root / name).dir
    return out


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_generator_exports_to_every_format_and_matches_ganforge(arch, runs, tmp_path):
    gan = ganforge.load(runs[arch])
    z = gan.noise(5, seed=3)
    y = torch.arange(5) % gan.n_classes if gan.n_classes else None
    want = gan.generate(z, y)
    want = to_unit(want).numpy() if gan.is_image else want.numpy()
    for ext in (".onnx", ".pt", ".safetensors"):
        path, diff = export_verified(runs[arch], tmp_path / f"G{ext}")
        assert diff <= 1e-4 and path.stat().st_size > 0
        if ext == ".onnx":  # an independent run: onnxruntime on a new batch size
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = {"z": z.numpy(), **({"y": y.numpy().astype(np.int64)} if y is not None else {})}
            got = session.run(None, feed)[0]
        elif ext == ".pt":
            got = torch.jit.load(str(path))(*([z, y] if y is not None else [z])).detach().numpy()
        else:
            back = ganforge.load(path)
            got = back.generate(z, y)
            got = (to_unit(got) if back.is_image else got).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert got.shape == (5, *gan.data_shape)


def test_metadata_says_how_to_use_the_file(runs, tmp_path):
    path, _ = export_verified(runs["mlp-conditional"], tmp_path / "G.onnx")
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert model.opset_import[0].version == OPSET
    assert meta["z_dim"] == "100" and meta["z_dist"] == "normal" and meta["inputs"] == "z,y"
    assert json.loads(meta["classes"]) == [str(k) for k in range(10)] and json.loads(meta["shape"]) == [1, 28, 28]
    assert meta["ganforge_version"] == ganforge.__version__ and len(meta["config_sha256"]) == 64
    assert [i.name for i in model.graph.input] == ["z", "y"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch axis is symbolic
    files = {"ganforge.json": ""}
    torch.jit.load(str(export_verified(runs["toy-2d"], tmp_path / "G.pt")[0]), _extra_files=files)
    toy = json.loads(files["ganforge.json"])
    assert toy["kind"] == "toy" and toy["z_dim"] == "8" and toy["inputs"] == "z"
    assert toy["output"].startswith("samples N x D")


def test_a_mismatch_writes_nothing_and_exits_1(runs, tmp_path, monkeypatch, capsys):
    import ganforge.exports as exports
    monkeypatch.setattr(exports, "TOLERANCE", -1.0)
    with pytest.raises(ExportMismatch, match="nothing was written"):
        export_verified(runs["toy-2d"], tmp_path / "G.pt")
    assert main(["export", str(runs["toy-2d"]), "--out", str(tmp_path / "G.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differs from ganforge's sampling" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_exports_are_one_line_exit_2_and_write_nothing(runs, tmp_path, monkeypatch, capsys):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(b"PK\x03\x04")
    cases = [([str(runs["toy-2d"]), "--out", str(tmp_path / "G.tflite")], "must end in .onnx, .pt, .safetensors"),
             ([str(cut), "--out", str(tmp_path / "G.pt")], "truncated or corrupt")]
    for args, message in cases:
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # the extra missing
    assert main(["export", str(runs["toy-2d"]), "--out", str(tmp_path / "G.onnx")]) == 2
    assert "pip install 'ganforge[onnx]'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pt"]


_NO_TORCH = """
import runpy, sys
sys.modules["torch"] = None      # import torch fails: the sampler must not need it
sys.modules["ganforge"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("arch", ["mlp-conditional", "dcgan-64-rgb"])
def test_the_standalone_onnx_sampler_needs_no_torch_and_matches_ganforge(arch, runs, tmp_path):
    gan = ganforge.load(runs[arch])
    path, _ = export_verified(runs[arch], tmp_path / "G.onnx")
    z = gan.noise(6, seed=5)
    np.save(tmp_path / "z.npy", z.numpy())
    script = str(ROOT / "examples" / "sample_onnx.py")
    for out in ("x.npy", "grid.png"):
        p = subprocess.run([sys.executable, "-c", _NO_TORCH, script, str(path), "--z", str(tmp_path / "z.npy"),
                            "--out", str(tmp_path / out)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    y = torch.arange(6) % gan.n_classes if gan.n_classes else None
    want = to_unit(gan.generate(z, y)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), want, atol=1e-5)
    from PIL import Image
    w, h = Image.open(tmp_path / "grid.png").size
    side = gan.data_shape[-1]
    assert (w, h) == (3 * (side + 2) + 2, 2 * (side + 2) + 2)  # 6 samples: 3 columns, 2 rows
