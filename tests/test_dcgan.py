"""DCGAN models: shapes for every size and channel count, the paper's initialisation, the builders."""

import pytest
import torch
from torch import nn

from ganforge.config import config_warnings, resolve_config
from ganforge.errors import GanforgeError
from ganforge.models import DCGANDiscriminator, DCGANGenerator, build_discriminator, build_generator


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_follow_size_and_channels(size, channels):
    G = DCGANGenerator(z_dim=16, image_size=size, channels=channels, features=4)
    D = DCGANDiscriminator(image_size=size, channels=channels, features=4)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1  # Tanh
    assert D(x).shape == (5,)
    # one stride-2 block per doubling between 4 px (7 px at 28) and the image: 28 → 2, 32 → 3, 64 → 4,
    # 128 → 5 up-convolutions; the end kernels span the base
    ups = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2)]
    downs = [m for m in D.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(ups) == len(downs) == {28: 2, 32: 3, 64: 4, 128: 5}[size]
    base = 7 if size == 28 else 4
    assert G.net[0].kernel_size == D.net[-1].kernel_size == (base, base)


def test_64px_matches_the_pytorch_example_layer_for_layer():
    G, D = DCGANGenerator(100, 64, 3, 64), DCGANDiscriminator(64, 3, 64)
    g_convs = [(m.in_channels, m.out_channels) for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [(m.in_channels, m.out_channels) for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert g_convs == [(100, 512), (512, 256), (256, 128), (128, 64), (64, 3)]
    assert d_convs == [(3, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    # BatchNorm on every D block but the first; the example's parameter counts
    d_bn = [m.num_features for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    assert d_bn == [128, 256, 512]
    assert sum(p.numel() for p in G.parameters()) == 3_576_704
    assert sum(p.numel() for p in D.parameters()) == 2_765_568


def test_init_statistics(tiny_config):
    cfg = resolve_config("dcgan", overrides={"data.name": "mnist5k", "data.channels": 3})
    torch.manual_seed(0)
    G = build_generator(cfg.model, (3, 64, 64))
    with torch.no_grad():
        w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
        gamma = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
        beta = torch.cat([m.bias for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(w.mean()) < 1e-3 and w.std() == pytest.approx(0.02, rel=0.01)   # 3.6 M draws
    assert gamma.mean() == pytest.approx(1.0, abs=0.003) and gamma.std() == pytest.approx(0.02, rel=0.1)
    assert torch.all(beta == 0)


def test_d_without_batchnorm_for_per_sample_penalties():
    D = DCGANDiscriminator(32, 1, 8, norm="none")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    x = torch.randn(4, 1, 32, 32)
    # no coupling between samples: a sample's logit does not depend on the rest of the batch
    assert torch.allclose(D(x)[:1], D(x[:1]), atol=1e-6)


def test_builder_rejects_images_dcgan_cannot_make():
    cfg = resolve_config("mnist-dcgan")
    with pytest.raises(GanforgeError, match="square 1- or 3-channel images of 28, 32, 64, 128 px"):
        build_generator(cfg.model, (1, 30, 30))
    with pytest.raises(GanforgeError, match="set data.image_size"):
        build_discriminator(cfg.model, (2, 32, 32))


def test_config_checks_for_dcgan():
    with pytest.raises(GanforgeError, match="data.image_size 28, 32, 64 or 128"):
        resolve_config("dcgan", overrides={"data.name": "mnist5k", "data.image_size": 48})
    with pytest.raises(GanforgeError, match="pass --data PATH"):
        resolve_config("dcgan")
    with pytest.raises(GanforgeError, match="dcgan needs image data"):
        resolve_config("dcgan", overrides={"data.name": "ring-8", "data.image_size": None,
                                           "data.channels": None, "data.augment": False})
    with pytest.raises(GanforgeError, match="model.d_pack applies to the MLP models"):
        resolve_config("mnist-dcgan", overrides={"model.d_pack": 2})
    # wgan-gp's recommendation (no BatchNorm in the critic) sits below the preset, so the dcgan preset's
    # BatchNorm stands, and a warning names the conflict and the fix
    digits = {"data.name": "mnist5k", "data.image_size": 32, "data.channels": 1, "data.augment": False}
    cfg = resolve_config("dcgan", overrides={**digits, "loss": "wgan-gp"})
    assert cfg.model.d_norm == "batchnorm"
    assert any("set model.d_norm: none" in w for w in config_warnings(cfg))
    assert config_warnings(resolve_config("dcgan", overrides={**digits, "loss": "wgan-gp", "model.d_norm": "none"})) == []
    assert config_warnings(resolve_config("mnist-dcgan")) == []


def test_config_warnings_are_printed_and_logged_once(tiny_config, tmp_path, capsys):
    import json

    import ganforge

    cfg = tiny_config("mnist-dcgan", loss="wgan-gp", r1=0.0, train__steps=1, model__g_features=4, model__d_features=4,
                      model__d_norm="batchnorm")
    run = ganforge.train(cfg, tmp_path / "run")
    err = capsys.readouterr().err
    assert err.count("ganforge: warning: wgan-gp with BatchNorm in D") == 1
    events = [json.loads(l) for l in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["kind"] == "event"] == ["config_warning"]
    ganforge.train(cfg.replace(train={"steps": 2}), run.dir, resume=True)
    assert "warning: wgan-gp" not in capsys.readouterr().err   # said once, when the run started


def test_28px_with_fully_connected_layers_is_lucic_et_als_mnist_pair():
    # compare_gan's MNIST nets (architectures/infogan.py): G FC 1024 → FC 128·7·7 → deconv 4×4/2 to 64 →
    # deconv 4×4/2 to 1; D conv 4×4/2 64 → conv 4×4/2 128 → FC 1024 → 1 (BatchNorm where DCGAN has it)
    G, D = DCGANGenerator(100, 28, 1, 64, fc=1024), DCGANDiscriminator(28, 1, 64, fc=1024)
    g_layers = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in G.modules()
                if isinstance(m, nn.ConvTranspose2d)]
    d_layers = [(m.in_channels, m.out_channels, m.kernel_size[0]) for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert g_layers == [(100, 1024, 1), (1024, 128, 7), (128, 64, 4), (64, 1, 4)]
    assert d_layers == [(1, 64, 4), (64, 128, 4), (128, 1024, 7), (1024, 1, 1)]
    # by hand: 100·1024 + 2·1024 (BN) + 1024·128·49 + 2·128 + 128·64·16 + 2·64 + 64·16
    assert sum(p.numel() for p in G.parameters()) == 6_659_456
    # 64·16 + 64·128·16 + 2·128 + (128·49·1024 + 1024) + 1024
    assert sum(p.numel() for p in D.parameters()) == 6_556_928
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 1, 28, 28) and D(x).shape == (3,)
    cfg = resolve_config("mnist-dcgan", overrides={"data.image_size": 28, "model.g_fc": 16, "model.d_fc": 16,
                                                   "conditional": True})
    Gc, Dc = build_generator(cfg.model, (1, 28, 28), 10), build_discriminator(cfg.model, (1, 28, 28), 10)
    y = torch.arange(3)
    assert Dc(Gc(torch.randn(3, 100), y), y).shape == (3,)
    with pytest.raises(GanforgeError, match="model.g_fc and model.d_fc apply to model.arch dcgan"):
        resolve_config("mnist-mlp", overrides={"model.g_fc": 16})
