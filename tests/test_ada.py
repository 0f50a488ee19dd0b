"""ADA (Karras et al. 2020): the update of p by hand, the budget-scaled speed, augmentation with probability
p, and p (with its running statistic) surviving a crash and --resume exactly."""

import pytest
import torch

import ganforge
from ganforge.augment import diff_augment
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.training.duties.ada import adjust, budget_kimg


def test_adjust_by_hand():
    # 4 steps of batch 64 = 256 images; ada_kimg 10: p moves by 256 / 10,000 = 0.0256 per adjustment
    assert adjust(0.0, 0.8, 0.6, 256, 10) == pytest.approx(0.0256)
    assert adjust(0.5, 0.2, 0.6, 256, 10) == pytest.approx(0.4744)
    assert adjust(0.5, 0.6, 0.6, 256, 10) == 0.5            # on target: no move
    assert adjust(0.0, -1.0, 0.6, 256, 10) == 0.0           # clamped at 0
    assert adjust(0.99, 1.0, 0.6, 256, 1) == 1.0            # and at 1


def test_budget_kimg_is_a_tenth_of_the_projected_run():
    assert budget_kimg(64_000, 0.5) == pytest.approx(12.8)  # 128,000 images in all -> 12.8 kimg
    assert budget_kimg(64_000, 1.0) == pytest.approx(6.4)
    assert budget_kimg(0, 0.0) is None


def test_augmentation_applies_with_probability_p():
    x = torch.rand(2000, 1, 16, 16) + 0.5  # no zero pixel: cutout changes every image it touches
    torch.manual_seed(0)
    assert torch.equal(diff_augment(x, ["cutout"], 0.0), x)
    torch.manual_seed(0)
    always = diff_augment(x, ["cutout"])
    torch.manual_seed(0)
    assert torch.equal(diff_augment(x, ["cutout"], 1.0), always)
    torch.manual_seed(0)
    changed = (diff_augment(x, ["cutout"], 0.3) != x).flatten(1).any(1).double().mean()
    assert abs(float(changed) - 0.3) < 0.035  # 2,000 draws: 3.5 standard deviations


def test_ada_needs_policies_and_a_target_below_one():
    with pytest.raises(GanforgeError, match="diffaugment"):
        resolve_config("mnist-conv", overrides={"ada_target": 0.6})
    with pytest.raises(GanforgeError, match="ada_target"):
        resolve_config("mnist-conv", overrides={"ada_target": 1.0, "diffaugment": "cutout"})


def test_p_moves_in_steps_of_the_set_speed_and_resumes_exactly(tmp_path):
    sets = {"train.steps": 8, "train.epochs": None, "train.max_seconds": None, "train.batch_size": 16,
            "data.limit": 64, "log.progress": False, "log.every": 1, "eval.every": "off",
            "model.g_features": 8, "model.d_features": 8, "diffaugment": "translation,cutout",
            "ada_target": 0.2, "ada_interval": 3, "ada_kimg": 0.096,
            "log.checkpoint_every": "4 steps", "log.sample_every": "4 steps"}
    cfg = resolve_config("mnist-conv", overrides=sets)
    whole = ganforge.train(cfg, tmp_path / "w")
    ps = [r["ada_p"] for r in whole.metrics if r["kind"] == "train"]
    assert len(ps) == 8 and ps[0] == ps[1] == 0.0  # adjusted every 3 steps only
    # each adjustment moves p by 3 steps x 16 images / 96 images = 0.5, within [0, 1]
    assert all(round(p * 2) == p * 2 and 0 <= p <= 1 for p in ps)
    assert ps[2] in (0.0, 0.5) and ps[3:5] == [ps[2], ps[2]]

    def crash(step, G, D):
        if step == 6:  # after the checkpoint at 4, in the middle of an ADA interval (steps 7-9)
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        ganforge.train(cfg, tmp_path / "p", on_step=crash)
    resumed = ganforge.train(cfg, tmp_path / "p", resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "elapsed_s")} for r in rows]  # noqa: E731
    assert strip(resumed.metrics) == strip(whole.metrics)
    a, b = whole.load(), resumed.load()
    assert all(torch.equal(x, y) for x, y in zip(a.generator.state_dict().values(), b.generator.state_dict().values()))
