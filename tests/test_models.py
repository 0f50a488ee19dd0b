import torch
from torch import nn

from ganforge.config import resolve_config
from ganforge.models import MLPDiscriminator, MLPGenerator, build_discriminator, build_generator


def _count(m):
    return sum(p.numel() for p in m.parameters())


def _linear(i, o):
    return i * o + o


def test_mnist_mlp_parameter_counts_match_the_original():
    cfg = resolve_config("mnist-mlp").model
    G, D = build_generator(cfg, (1, 28, 28)), build_discriminator(cfg, (1, 28, 28))
    assert _count(G) == _linear(100, 256) + _linear(256, 256) + _linear(256, 784) == 293136
    assert _count(D) == _linear(784, 256) + _linear(256, 256) + _linear(256, 1) == 267009


def test_gan_py_parameter_counts_match_the_original():
    cfg = resolve_config("mnist-mlp-bn").model
    G, D = build_generator(cfg, (1, 28, 28)), build_discriminator(cfg, (1, 28, 28))
    bn = lambda n: 2 * n  # weight and bias; running stats are buffers, not parameters
    assert _count(G) == (_linear(100, 128) + _linear(128, 256) + bn(256) + _linear(256, 512) + bn(512)
                         + _linear(512, 1024) + bn(1024) + _linear(1024, 784)) == 1510032
    assert _count(D) == _linear(784, 512) + _linear(512, 256) + _linear(256, 1) == 533505
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [256, 512, 1024]   # none after the first block
    assert all(m.eps == 0.8 and m.momentum == 0.1 for m in norms)
    assert [type(m) for m in G.net][:2] == [nn.Linear, nn.LeakyReLU]


def test_shapes_and_ranges():
    G = MLPGenerator(8, (16,), (3, 4, 5))
    D = MLPDiscriminator((3, 4, 5), (16,))
    x = G(torch.randn(7, 8))
    assert x.shape == (7, 3, 4, 5) and x.abs().max() <= 1
    assert D(x).shape == (7,)


def test_dropout_is_only_in_d_when_asked():
    assert not any(isinstance(m, nn.Dropout) for m in MLPDiscriminator((1, 2, 2), (4, 4)).modules())
    D = MLPDiscriminator((1, 2, 2), (4, 4), dropout=0.3)
    assert sum(isinstance(m, nn.Dropout) for m in D.modules()) == 2
