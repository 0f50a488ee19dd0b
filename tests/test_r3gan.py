"""R3GAN's baseline: the R2 penalty in the step, RpGAN's pairing in G's update, the normalisation-free ResNet,
and Stacked MNIST's data and 1,000-mode metric."""

import math

import pytest
import torch
from torch import nn

import ganforge
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.losses import build_loss, d_bce, g_rpgan
from ganforge.models import build_discriminator, build_generator
from ganforge.models.resnet import ResNetDiscriminator, ResNetGenerator, stages
from ganforge.training.step import GANStep, Nets


class LinearD(nn.Module):
    """D(x) = ⟨w, x⟩: ∇_x D = w for every sample, so ‖∇_x D‖² = Σ w² (what R1 and R2 average)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]))  # Σ w² = 14.25

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


class TinyG(nn.Module):
    z_dim, out_shape = 4, (1, 2, 2)

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, z):
        return self.lin(z).view(-1, 1, 2, 2)


class FixedBatches:
    labels = None

    def __init__(self):
        self.x = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(3))

    def next(self):
        return self.x.clone()


def _step(loss="nonsaturating", **over):
    cfg = resolve_config("mnist-mlp", overrides={"loss": loss, "train.batch_size": 8, "model.z_dim": 4, **over})
    torch.manual_seed(0)
    G, D = TinyG(), LinearD()
    nets = Nets(G=G, D=D, G_train=G, D_train=D, D_plain=D, loss=build_loss(loss),
                opt_g=torch.optim.SGD(G.parameters(), lr=0.0), opt_d=torch.optim.SGD(D.parameters(), lr=0.0))
    return GANStep(cfg, nets, 0, torch.device("cpu")), FixedBatches()


@pytest.mark.parametrize("r1, r2, every, i", [(0.0, 2.0, 1, 0), (1.0, 2.0, 1, 0), (0.0, 2.0, 2, 0), (0.0, 2.0, 2, 1)])
def test_r1_and_r2_add_half_gamma_times_the_squared_input_gradient_lazily(r1, r2, every, i):
    step, batches = _step(r1=r1, r2=r2, r1_every=every)
    out = step(batches, i)
    weight = every if i % every == 0 else 0                  # lazy: every k-th step, weighted k
    expected = d_bce(out.real_logits, out.fake_logits) + (r1 + r2) / 2 * weight * 14.25
    assert out.d_loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_rpgan_judges_each_fake_against_the_real_batch_d_saw():
    step, batches = _step("rpgan", r1=0.0)
    out = step(batches, 0)
    D = step.nets.D
    with torch.no_grad():
        expected = g_rpgan(D(out.fake), D(batches.x))
    assert out.g_loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_rpgan_and_r2_bad_combinations():
    with pytest.raises(GanforgeError, match="label_smoothing has no meaning for loss rpgan"):
        resolve_config("mnist-mlp", overrides={"loss": "rpgan", "label_smoothing": 0.1})
    from ganforge.config import config_warnings
    warned = config_warnings(resolve_config("mnist-dcgan", overrides={"r2": 1.0, "model.d_norm": "batchnorm"}))
    assert any(w.startswith("r2 with BatchNorm") for w in warned)
    warned = config_warnings(resolve_config("mnist-mlp", overrides={"loss": "wgan", "r2": 1.0}))
    assert any("r1/r2 with loss wgan" in w for w in warned)


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3), (64, 3), (128, 1)])
def test_resnet_shapes_at_every_size(size, channels):
    G = ResNetGenerator(16, size, channels, widths=(16,), blocks=1, group_channels=8)
    D = ResNetDiscriminator(size, channels, widths=(16,), blocks=1, group_channels=8)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    assert stages(size)[-1] == size and stages(size)[0] == (7 if size == 28 else 4)


def test_resnet_parameter_count_by_hand_and_blocks_start_as_the_identity():
    G = ResNetGenerator(8, 28, 1, widths=(16,), blocks=1, group_channels=8, expansion=2)
    D = ResNetDiscriminator(28, 1, widths=(16,), blocks=1, group_channels=8, expansion=2)
    # a block: 1x1 16→32 (512) + bias 32 + grouped 3x3 32→32 in 4 groups (32·8·9 = 2304) + bias 32 + 1x1 32→16 (512)
    block = 512 + 32 + 2304 + 32 + 512
    assert sum(p.numel() for p in G.parameters()) == 16 * 7 * 7 + 8 * 16 + 3 * block + 16   # basis, z map, out
    assert sum(p.numel() for p in D.parameters()) == 16 + 3 * block + 16 * 7 * 7 + 16       # in, depthwise, logit
    x = torch.randn(2, 16, 7, 7)
    for blk in (m for m in G.modules() if type(m).__name__ == "ResidualBlock"):
        assert torch.equal(blk(x), x)                     # the last convolution of each branch starts at zero
    # widths per stage: one number or one per stage
    assert [m.out_channels for m in ResNetGenerator(8, 32, 3, widths=(32, 24, 16, 8), group_channels=8).modules()
            if isinstance(m, nn.Conv2d)][-1] == 3


def test_resnet_conditional_and_bad_sizes():
    cfg = resolve_config("mnist-conv", overrides={"model.arch": "resnet", "model.widths": [16],
                                                   "model.group_channels": 8})
    G, D = build_generator(cfg.model, (1, 28, 28), 10), build_discriminator(cfg.model, (1, 28, 28), 10)
    y = torch.arange(4)
    assert D(G(torch.randn(4, cfg.model.z_dim), y), y).shape == (4,)
    with pytest.raises(GanforgeError, match="model.arch resnet needs data.image_size 28, 32, 64 or 128, got 48"):
        resolve_config("mnist-conv", overrides={"model.arch": "resnet", "data.image_size": 48})
    with pytest.raises(GanforgeError, match="model.arch resnet needs image data, not 'ring-8'"):
        resolve_config("ring-8", overrides={"model.arch": "resnet"})
    with pytest.raises(GanforgeError, match="32 px has 4 stages"):
        build_generator(cfg.model.__class__(arch="resnet", widths=(16, 16)), (3, 32, 32))
    with pytest.raises(GanforgeError, match="multiple of model.group_channels"):
        resolve_config("mnist-conv", overrides={"model.arch": "resnet", "model.widths": [12]})


def test_stacked_mnist_stacks_three_digits_and_streams_deterministically():
    from ganforge.data import load_dataset
    from ganforge.data.batches import batches_for
    from ganforge.data.stacked import draw_triples
    cfg = resolve_config("stacked-mnist")
    data = load_dataset(cfg.data)
    assert data.shape == (3, 28, 28) and data.y is None and data.digits.shape == (len(data), 3)
    t = draw_triples(data.source.shape[0], 5, torch.Generator().manual_seed(0))
    for c in range(3):                                    # channel c is the digit the c-th index names
        assert torch.equal(data.x[:5, c], data.source[t[:, c], 0])
    a = batches_for(data, 16, seed=1, device=torch.device("cpu"), samples_per_epoch=160)
    first = [a.next() for _ in range(3)]
    b = batches_for(data, 16, seed=1, device=torch.device("cpu"), samples_per_epoch=160)
    b.position = 2                                        # resume: the same third batch
    assert a.per_epoch == 10 and torch.equal(b.next(), first[2]) and not torch.equal(first[0], first[1])
    with pytest.raises(GanforgeError, match="stacked-mnist .* needs data.channels 3"):
        resolve_config("stacked-mnist", overrides={"data.channels": 1})


def test_modes_uniform_against_known_histograms():
    from ganforge.metrics.image import modes_uniform
    half = torch.nn.functional.one_hot(torch.arange(26000) % 500, 1000).double()   # 500 modes, evenly
    found = modes_uniform(half)
    assert found["modes_1000"] == 500 and found["kl_1000"] == pytest.approx(math.log(2))
    every = torch.nn.functional.one_hot(torch.arange(26000) % 1000, 1000).double()
    assert modes_uniform(every) == {"modes_1000": 1000, "kl_1000": pytest.approx(0.0, abs=1e-4)}
    one = torch.nn.functional.one_hot(torch.zeros(10, dtype=torch.long), 1000).double()
    assert modes_uniform(one)["kl_1000"] == pytest.approx(math.log(1000))


def test_the_per_channel_classifier_names_mode_100a_plus_10b_plus_c():
    from ganforge.metrics.features import Extractor, LeNet, per_channel
    torch.manual_seed(0)
    digits = Extractor("classifier:lenet@mnist5k", LeNet(1, 10).eval(), {}, classes=10)
    x = torch.randn(6, 3, 28, 28)
    probs = per_channel(digits)(x)["probs"]
    each = [digits(x[:, c : c + 1])["probs"] for c in range(3)]
    assert probs.shape == (6, 1000) and torch.allclose(probs.sum(1), torch.ones(6, dtype=torch.float64))
    expected = 100 * each[0].argmax(1) + 10 * each[1].argmax(1) + each[2].argmax(1)
    assert torch.equal(probs.argmax(1), expected)
    assert torch.allclose(probs[:, 123], each[0][:, 1] * each[1][:, 2] * each[2][:, 3], rtol=1e-5)


def test_stacked_mnist_preset_trains_and_scores_its_modes(tmp_path):
    cfg = resolve_config("stacked-mnist", overrides={
        "train.steps": 3, "train.batch_size": 16, "log.progress": False, "model.g_features": 8,
        "model.d_features": 8, "eval.n_train": 2000, "eval.every": "3 steps"})
    run = ganforge.train(cfg, tmp_path / "s")
    found = [m for m in run.metrics if m["kind"] == "eval"][-1]
    assert 1 <= found["modes_1000"] <= 1000 and found["kl_1000"] > 0
    assert found["features"] == "classifier:lenet@mnist5k per channel"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; CI has none)")
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_cuda_r3gan_resnet_trains(tmp_path, amp):
    cfg = resolve_config("stacked-mnist", overrides={
        "device": "cuda", "train.amp": amp, "train.steps": 8, "train.batch_size": 32, "log.progress": False,
        "log.every": 1, "model.arch": "resnet", "model.widths": [32], "model.group_channels": 8, "r1_every": 2,
        "eval.every": "off"})
    run = ganforge.train(cfg, tmp_path / "g")
    lines = [m for m in run.metrics if m["kind"] == "train"]
    assert len(lines) == 8 and all(math.isfinite(m["d_loss"]) and math.isfinite(m["g_loss"]) for m in lines)
    assert ganforge.load(tmp_path / "g").sample(4).shape == (4, 3, 28, 28)
