"""The loop and its duties, each tested without a training run: fake steps, fake clocks, fake state."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ganforge.config import resolve_config
from ganforge.diagnostics import Diagnostics
from ganforge.dist import World
from ganforge.metric_spec import rank, rank_key
from ganforge.training import loop
from ganforge.training.context import Training
from ganforge.training.duties import Budget, Checkpoints, Diagnose, Duty, EvaluateImages, LogLosses
from ganforge.training.state import TrainState
from ganforge.training.step import StepOut


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class FakeLog:
    def __init__(self):
        self.records, self.warnings = [], []
        self.bar = SimpleNamespace(update=lambda n: None, set_postfix=lambda **k: None)

    def record(self, r):
        self.records.append(r)

    def event(self, step, event, message, say=True):
        self.record({"step": step, "kind": "event", "event": event, "message": message})

    def warn(self, message):
        self.warnings.append(message)

    def rewind(self, step):
        self.records = [r for r in self.records if r["step"] <= step]


def _training(total=None, **sets):
    """A Training around a tiny linear G and D, a fake batch stream and a fake clock."""
    cfg = resolve_config("mnist-mlp", overrides={"log.progress": False, **sets})
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    nets = SimpleNamespace(G=G, D=D, G_ema=None, opt_g=torch.optim.SGD(G.parameters(), lr=0.1),
                           opt_d=torch.optim.SGD(D.parameters(), lr=0.2))
    batches = SimpleNamespace(position=0, per_epoch=4)
    clock = Clock()
    state = TrainState(nets, batches, Diagnostics("nonsaturating", 2), fixed_z=torch.zeros(1, 2),
                       acc=torch.zeros(4), meta={}, clock=clock)
    t = Training(cfg, World(), torch.device("cpu"), Path("."), None, 0, None, False, state, None,
                 total, resumed=False, warnings=[], log=FakeLog())
    return t, clock


def _out(d_loss=1.0, g_loss=2.0, real_logit=0.0, fake_logit=0.0):
    return StepOut(torch.tensor(d_loss), torch.tensor(g_loss), torch.full((4, 1), real_logit),
                   torch.full((4, 1), fake_logit), torch.randn(4, 2), torch.randn(4, 2))


def test_fit_walks_steps_and_duties_in_order_and_stops_when_a_duty_says():
    t, _ = _training()
    seen = []

    class Note(Duty):
        def __init__(self, name):
            self.name = name

        def start(self, t):
            seen.append(("start", self.name))

        def after_step(self, t, out):
            seen.append((t.state.step, self.name))
            if self.name == "b" and t.state.step == 2:
                t.stop = "budget"

        def finish(self, t):
            seen.append(("finish", self.name))

        def close(self, t):
            seen.append(("close", self.name))

    def step(batches, i):
        batches.position += 3  # three batches per step: epochs are counted from positions
        return _out()

    t.step_fn = step
    loop.fit(t, [Note("a"), Note("b")])
    assert seen == [("start", "a"), ("start", "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b"),
                    ("finish", "a"), ("finish", "b"), ("close", "b"), ("close", "a")]
    assert t.state.step == 2 and t.epochs == (0, 1)  # positions 3 → 6 crossed the first epoch of 4


def test_a_duty_asking_for_a_rollback_skips_the_rest_of_the_step(monkeypatch):
    t, _ = _training()
    calls = []

    def fake_roll_back(state, cfg, world, ckpt_dir, why):
        calls.append(why)
        state.step = 0
        return {"step": 0, "kind": "event", "event": "nan_rollback"}, "rolled back"

    monkeypatch.setattr(loop, "roll_back", fake_roll_back)
    after = []

    class Poisoned(Duty):
        def after_step(self, t, out):
            return "NaN/Inf in the losses" if t.state.step == 1 and not calls else None

        def after_rollback(self, t):
            after.append(t.state.step)

    class Later(Duty):
        def after_step(self, t, out):
            after.append(("later", t.state.step))
            if t.state.step == 2:
                t.stop = "budget"

    t.step_fn = lambda b, i: _out()
    loop.fit(t, [Poisoned(), Later()])
    assert calls == ["NaN/Inf in the losses"]
    assert after == [0, ("later", 1), ("later", 2)]  # step 1's Later was skipped; training went on from 0
    assert t.log.records[-1]["event"] == "nan_rollback" and t.log.warnings == ["rolled back"]


def test_budget_stops_by_steps_time_and_signal():
    t, clock = _training(total=3)
    b = Budget()
    b.start(t)
    try:
        assert t.stop is None
        t.state.step = 3
        b.after_step(t, None)
        assert t.stop == "budget"
        t, clock = _training(total=None, **{"train.max_seconds": 5.0})
        t.state.start_clock()
        b.after_step(t, None)
        assert t.stop is None
        clock.now += 5.0
        b.after_step(t, None)
        assert t.stop == "max_seconds"
        t, _ = _training(total=None)
        b._handle(15, None)  # SIGTERM: stop after this step
        b.after_step(t, None)
        assert t.stop == "signal"
    finally:
        b.close(t)
    assert t.signal == 15


def test_log_losses_averages_since_the_last_line_and_asks_for_rollback_on_nan():
    t, clock = _training(**{"log.every": 2})
    t.state.start_clock()
    duty = LogLosses()
    duty.start(t)
    for step, (d, g) in enumerate([(1.0, 3.0), (3.0, 5.0)], start=1):
        t.state.step = step
        clock.now += 0.5
        assert duty.after_step(t, _out(d, g, real_logit=math.log(3))) is None  # sigmoid(log 3) = 0.75
    (line,) = t.log.records
    assert line["step"] == 2 and line["d_loss"] == 2.0 and line["g_loss"] == 4.0
    assert line["d_real"] == 0.75 and line["d_fake"] == 0.5
    assert line["img_per_s"] == pytest.approx(2 * t.cfg.train.batch_size / 1.0)  # two batches of D in 1 s
    assert line["lr_g"] == 0.1 and line["lr_d"] == 0.2 and line["elapsed_s"] == 1.0
    assert t.state.acc_n == 0 and float(t.state.acc.abs().sum()) == 0.0
    for step in (3, 4):
        t.state.step = step
        why = duty.after_step(t, _out(float("nan")))
    assert why == "NaN/Inf in the losses" and len(t.log.records) == 1


def test_checkpoints_refuse_non_finite_weights(monkeypatch):
    t, _ = _training(total=4, **{"log.checkpoint_every": "2 steps"})
    saved = []
    monkeypatch.setattr(Checkpoints, "save", staticmethod(lambda t: saved.append(t.state.step)))
    duty = Checkpoints()
    duty.start(t)  # a new run with on_nan rollback: a step-0 checkpoint to go back to
    for step in (1, 2, 3):
        t.state.step = step
        assert duty.after_step(t, None) is None
    with torch.no_grad():
        t.state.nets.D.weight[0, 0] = float("inf")
    t.state.step = 4
    assert duty.after_step(t, None) == "NaN/Inf in the weights"
    assert saved == [0, 2]


def test_evaluation_is_due_at_checkpoints_and_at_the_end_with_auto():
    t, _ = _training(total=10, **{"log.checkpoint_every": "4 steps", "eval.every": "auto"})
    due = []
    for step in range(1, 11):
        t.state.step = step
        due.append(EvaluateImages._due(t))
    assert [s for s, d in zip(range(1, 11), due) if d] == [4, 8, 10]
    t, _ = _training(total=10, **{"eval.every": "3 steps"})
    t.state.step = 6
    assert EvaluateImages._due(t)


def test_epoch_intervals_fall_due_when_an_epoch_boundary_is_crossed():
    t, _ = _training(**{"log.sample_every": "2 epochs"})
    t.epochs = (1, 2)
    assert t.due("2 epochs") and t.due("1 epoch") and not t.due("3 epochs")
    t.state.step = 6
    assert t.due("3 steps") and not t.due("4 steps")


def test_diagnose_reads_only_steps_with_a_metrics_line():
    t, _ = _training()
    t.state.diagnostics = Diagnostics("nonsaturating", window=1, warmup=0)
    out = _out()
    out.fake = torch.zeros(4, 2)  # collapsed: every fake alike
    Diagnose().after_step(t, out)
    assert t.log.records == []
    t.record = {"step": 1, "d_real": 0.5, "d_fake": 0.5, "g_loss": 1.0}
    Diagnose().after_step(t, out)
    assert [r["event"] for r in t.log.records] == ["low_diversity"]


def test_rank_orders_evaluations():
    assert rank({"fid": 3.0}) > rank({"fid": 4.0})
    assert rank({"w1": 0.1}) > rank({"w1": 0.2})
    assert rank({"modes_covered": 8, "hq_fraction": 0.5, "kl_modes": 0.1}) > \
        rank({"modes_covered": 7, "hq_fraction": 0.9, "kl_modes": 0.0})
    assert rank({"precision": 0.8, "fid": 1}, best="precision") > rank({"precision": 0.7, "fid": 0}, best="precision")


def test_rank_key_names_the_metric_that_picked_best_pt():
    # images carry modes_covered too (the domain classifier's modes); best.pt is still picked by eval.best
    assert rank_key({"fid": 3.0, "modes_covered": 10, "kl_modes": 0.01}) == "fid"
    assert rank_key({"kid": 0.1, "fid": 3.0, "modes_covered": 10}, best="kid") == "kid"
    assert rank_key({"fd_imagenet_inception": 30.0, "modes_covered": 10}) == "fd_imagenet_inception"
    assert rank_key({"modes_covered": 8, "hq_fraction": 0.9, "kl_modes": 0.0}) == "modes_covered"
    assert rank_key({"w1": 0.1, "ks": 0.05}) == "w1"
