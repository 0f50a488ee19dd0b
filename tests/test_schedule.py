"""Budget-aware learning-rate schedules and the EMA's ramp-up: hand values, fake clocks, exact resume."""

import math

import pytest
import torch
from test_duties import _training

import ganforge
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.training.duties import Schedule
from ganforge.training.duties.schedule import lr_factor, progress
from ganforge.training.step import ema_decay, update_ema


def test_lr_factor_by_hand():
    assert [lr_factor("constant", p) for p in (0, 0.5, 1)] == [1, 1, 1]
    assert [lr_factor("linear", p) for p in (0, 0.25, 0.5, 1)] == pytest.approx([1, 0.75, 0.5, 0])
    # cosine: (1 + cos(pi p)) / 2
    assert [lr_factor("cosine", p) for p in (0, 0.25, 0.5, 1)] == pytest.approx(
        [1, (1 + math.sqrt(0.5)) / 2, 0.5, 0])
    # CycleGAN's shape: constant for the first half, then linear to 0
    assert [lr_factor("linear", p, 0.5) for p in (0, 0.5, 0.75, 1)] == pytest.approx([1, 1, 0.5, 0])


def test_progress_is_the_larger_fraction_of_the_budget():
    assert progress(50, 100, 0.0, None) == 0.5
    assert progress(0, None, 30.0, 120.0) == 0.25
    assert progress(50, 100, 90.0, 120.0) == 0.75  # time runs out first
    assert progress(500, 100, 0.0, None) == 1.0


def test_schedule_sets_lrs_at_0_50_100_percent_of_a_step_budget():
    t, _ = _training(total=10, **{"optim.lr_schedule": "linear", "optim.lr_g": 0.1, "optim.lr_d": 0.2})
    d = Schedule()
    seen = []
    d.start(t)
    for step in (0, 5, 10):
        t.state.step = step
        d.after_step(t, None)
        seen += [t.state.nets.opt_g.param_groups[0]["lr"], t.state.nets.opt_d.param_groups[0]["lr"]]
    assert seen == pytest.approx([0.1, 0.2, 0.05, 0.1, 0.0, 0.0])


def test_schedule_follows_a_time_budget_on_a_fake_clock_and_stretches_on_resume():
    sets = {"optim.lr_schedule": "cosine", "optim.lr_g": 0.1, "optim.lr_d": 0.1, "train.max_seconds": 120.0}
    t, clock = _training(**sets)
    d = Schedule()
    t.state.start_clock()
    d.start(t)
    lrs = []
    for seconds in (0, 60, 120):
        clock.now = t.state.started + seconds
        d.after_step(t, None)
        lrs.append(t.state.nets.opt_g.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.05, 0.0])
    # resumed after 60 s trained, with 60 s more: the schedule's end is at 120 s trained, so it starts halfway
    t, clock = _training(**{**sets, "train.max_seconds": 60.0})
    t.state.elapsed_before = 60.0
    t.state.start_clock()
    d = Schedule()
    d.start(t)
    assert t.state.nets.opt_g.param_groups[0]["lr"] == pytest.approx(0.05)


def test_schedule_keeps_the_rollbacks_lower_learning_rates():
    t, _ = _training(total=10, **{"optim.lr_schedule": "linear", "optim.lr_g": 0.1, "optim.lr_d": 0.2,
                                  "nan_lr_factor": 0.5})
    t.state.rollbacks, t.state.step = 2, 5
    Schedule().after_rollback(t)
    assert t.state.nets.opt_g.param_groups[0]["lr"] == pytest.approx(0.1 * 0.25 * 0.5)


def test_constant_schedule_leaves_the_optimisers_alone():
    t, _ = _training(total=10)
    t.state.step = 5
    Schedule().start(t)
    Schedule().after_step(t, None)
    assert t.state.nets.opt_g.param_groups[0]["lr"] == 0.1  # the fake optimiser's own


def test_ema_rampup_by_hand():
    assert ema_decay(0.999, 0.0, 0) == 0.999
    # half-life = min(ln 0.5 / ln 0.999 = 692.8 steps, 0.05 * steps done)
    assert ema_decay(0.999, 0.05, 0) == pytest.approx(0.5 ** 20)  # 1 step done: half-life 0.05 steps
    assert ema_decay(0.999, 0.05, 9) == pytest.approx(0.25)  # 10 steps: half-life 0.5 steps
    assert ema_decay(0.999, 0.05, 99) == pytest.approx(0.5 ** (1 / 5))
    assert ema_decay(0.999, 0.05, 20000) == pytest.approx(0.999)  # capped at the fixed decay
    # the sequence it gives a scalar "model" whose value is the step number
    ema, model = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    expected = 0.0
    with torch.no_grad():
        ema.weight.fill_(0.0)
        for i in range(30):
            model.weight.fill_(float(i + 1))
            beta = ema_decay(0.999, 0.05, i)
            update_ema(ema, model, beta)
            expected = beta * expected + (1 - beta) * (i + 1)
    assert ema.weight.item() == pytest.approx(expected, rel=1e-6)
    assert 0.5 ** (1 / 1.5) == pytest.approx(ema_decay(0.999, 0.05, 29))


def test_config_checks():
    with pytest.raises(GanforgeError, match="ema_rampup ramps up an EMA"):
        resolve_config("mnist-mlp", overrides={"ema_rampup": 0.05})
    off = resolve_config("ring-8", overrides={"ema": 0})       # the preset's ramp-up goes with its EMA
    assert off.ema == 0 and off.ema_rampup == 0
    with pytest.raises(GanforgeError, match="lr_decay_start' must be in"):
        resolve_config("mnist-mlp", overrides={"optim.lr_decay_start": 1.0})
    with pytest.raises(GanforgeError, match="lr_schedule"):
        resolve_config("mnist-mlp", overrides={"optim.lr_schedule": "step"})


def test_resume_mid_schedule_gives_the_uninterrupted_runs_lrs_and_ema(tmp_path):
    sets = {"train.steps": 6, "log.progress": False, "eval.n": 200, "log.every": 1, "optim.lr_schedule": "linear",
            "optim.lr_decay_start": 0.0, "ema": 0.99, "ema_rampup": 0.05, "log.checkpoint_every": "3 steps",
            "log.sample_every": "3 steps"}
    cfg = resolve_config("ring-8", overrides=sets)
    whole = ganforge.train(cfg, tmp_path / "w")

    def crash(step, G, D):
        if step == 4:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        ganforge.train(cfg, tmp_path / "p", on_step=crash)
    resumed = ganforge.train(cfg, tmp_path / "p", resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "elapsed_s")} for r in rows]
    assert strip(resumed.metrics) == strip(whole.metrics)
    assert [r["lr_g"] for r in whole.metrics if r["kind"] == "train"] == pytest.approx(
        [cfg.optim.lr_g * (1 - s / 6) for s in range(6)])
    a, b = whole.load(), resumed.load()
    for k, v in a.generator.state_dict().items():
        assert torch.equal(v, b.generator.state_dict()[k]), k
