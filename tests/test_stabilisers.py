import math

import pytest
import torch
from torch import nn

import ganforge
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.losses import build_loss, d_bce
from ganforge.models import MLPDiscriminator, spectral_normalise
from ganforge.training.step import instance_noise


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_one_sided_label_smoothing_targets_0_9_for_reals_only():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0, 1.0])
    t = 0.9
    expected = -sum(t * math.log(_sig(v)) + (1 - t) * math.log(1 - _sig(v)) for v in real.tolist()) / 2 \
        - sum(math.log(1 - _sig(v)) for v in fake.tolist()) / 2
    assert d_bce(real, fake, real_target=0.9).item() == pytest.approx(expected, rel=1e-6)
    smoothed = build_loss("nonsaturating", label_smoothing=0.1)
    assert smoothed.d(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert smoothed.g(fake).item() == build_loss("nonsaturating").g(fake).item()
    with pytest.raises(GanforgeError, match="label_smoothing applies to the BCE losses"):
        resolve_config("ring-8", overrides={"loss": "hinge", "label_smoothing": 0.1})


def test_spectral_norm_bounds_the_largest_singular_value_near_1():
    torch.manual_seed(0)
    D = spectral_normalise(MLPDiscriminator((2,), (64, 64)))
    with torch.no_grad():
        for m in D.modules():
            if isinstance(m, nn.Linear):
                m.parametrizations.weight.original.mul_(10)   # make the raw weights far from 1-Lipschitz
        for _ in range(30):                                   # power iterations happen in train-mode forwards
            D(torch.randn(8, 2))
    D.eval()
    for m in D.modules():
        if isinstance(m, nn.Linear):
            sigma = torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()
            assert sigma == pytest.approx(1.0, abs=0.05)


def test_instance_noise_anneals_linearly_to_zero():
    cfg = resolve_config("ring-8", overrides={"instance_noise": 0.2, "instance_noise_steps": 100})
    assert [instance_noise(cfg, s) for s in (0, 50, 100, 500)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert instance_noise(resolve_config("ring-8"), 0) == 0.0


def test_gradient_clipping_bounds_each_update(tmp_path):
    # Plain SGD with lr 1: a clipped step moves G's parameters by at most grad_clip.
    sets = {"train.steps": 1, "log.progress": False, "optim.momentum": 0.0, "optim.lr_g": 1.0,
            "optim.lr_d": 1.0, "d_steps": 1, "g_steps": 1, "eval.n": 100, "log.every": 1}
    torch.manual_seed(0)
    before = ganforge.train(resolve_config("gaussian-1d", overrides={**sets, "train.steps": 1, "grad_clip": 1e-3,
                                                                     "optim.lr_g": 1e-12, "optim.lr_d": 1e-12}),
                            tmp_path / "zero").load().generator.state_dict()
    after = ganforge.train(resolve_config("gaussian-1d", overrides={**sets, "grad_clip": 1e-3}),
                           tmp_path / "clip").load().generator.state_dict()
    moved = torch.cat([(after[k] - before[k]).flatten() for k in after]).norm().item()
    assert 0 < moved <= 1e-3 + 1e-9


@pytest.mark.parametrize("sets", [{"spectral_norm": True}, {"label_smoothing": 0.1},
                                  {"instance_noise": 0.1, "instance_noise_steps": 3}, {"grad_clip": 1.0}])
def test_each_stabiliser_trains_through_the_one_loop_and_resumes(sets, tmp_path):
    base = {"train.steps": 4, "log.progress": False, "eval.n": 200, "log.every": 1,
            "log.checkpoint_every": "2 steps", "log.sample_every": "2 steps"}
    whole = ganforge.train(resolve_config("ring-8", overrides={**base, **sets}), tmp_path / "w")
    part = ganforge.train(resolve_config("ring-8", overrides={**base, **sets, "train.steps": 2}), tmp_path / "p")
    resumed = ganforge.train(part.config.replace(**{"train.steps": 4}), part.dir, resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "elapsed_s")} for r in rows]
    assert strip(resumed.metrics) == strip(whole.metrics)
    assert all(math.isfinite(r["d_loss"]) for r in whole.metrics if r["kind"] == "train")
