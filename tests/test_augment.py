import pytest
import torch

import ganforge
from ganforge.augment import color, cutout, diff_augment, translation
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError


def test_translation_moves_content_by_at_most_an_eighth():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    y = translation(x)
    assert y.shape == x.shape
    assert torch.allclose(y.sum(dim=(1, 2, 3)), torch.ones(64))     # the dot stays inside: shift ≤ 4 px
    pos = y[:, 0].flatten(1).argmax(1)
    dx, dy = (pos // 28 - 14).abs(), (pos % 28 - 14).abs()
    assert dx.max() <= 4 and dy.max() <= 4 and (dx + dy).max() > 0   # 4 = round(28 / 8)


def test_cutout_zeroes_at_most_a_half_size_square():
    torch.manual_seed(0)
    y = cutout(torch.ones(32, 3, 28, 28))
    zeros = (y[:, 0] == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 14 * 14).all()
    assert torch.equal(y[:, 0], y[:, 2])                             # the same mask on every channel


def test_augmentations_are_differentiable_and_keep_shapes():
    x = torch.randn(8, 3, 32, 32, requires_grad=True)
    y = diff_augment(x, ["color", "translation", "cutout"])
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(1)
    c = color(torch.zeros(4, 1, 2, 2))
    assert torch.allclose(c, c[:, :, :1, :1].expand_as(c))          # brightness: one shift per image


def test_diffaugment_config_and_training(tmp_path):
    with pytest.raises(GanforgeError, match="unknown policy 'colour'.*did you mean 'color'"):
        resolve_config("mnist-mlp", overrides={"diffaugment": "colour"})
    with pytest.raises(GanforgeError, match="applies to image data"):
        resolve_config("ring-8", overrides={"diffaugment": "translation"})
    cfg = resolve_config("mnist-mlp", overrides={"diffaugment": "color,translation,cutout", "data.limit": 256,
                                                  "train.batch_size": 32, "train.steps": 4, "log.progress": False,
                                                  "r1": 1.0, "r1_every": 2, "log.every": 1})
    run = ganforge.train(cfg, tmp_path / "a")
    assert run.step == 4 and all(r["d_loss"] == r["d_loss"] for r in run.metrics if r["kind"] == "train")
