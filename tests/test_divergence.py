import json

import pytest
import torch
from golden import poison_once

import ganforge
from ganforge.config import resolve_config
from ganforge.errors import DivergedError

SETS = {"data.limit": 256, "train.batch_size": 32, "log.progress": False, "log.every": 4,
        "log.checkpoint_every": "8 steps", "train.steps": 40}


@pytest.mark.slow
def test_nan_rolls_back_lowers_the_learning_rates_and_finishes(tmp_path, capsys):
    cfg = resolve_config("mnist-mlp", overrides=SETS)
    run = ganforge.train(cfg, tmp_path / "r", on_step=poison_once(19))
    assert run.step == 40
    events = [m for m in run.metrics if m["kind"] == "event"]
    assert len(events) == 1 and events[0]["event"] == "nan_rollback"
    assert events[0]["step"] == 16 and events[0]["at_step"] == 20     # detected at the log after step 19
    assert events[0]["lr_g"] == pytest.approx(3e-4 * 0.5)
    train_rows = [m for m in run.metrics if m["kind"] == "train"]
    steps = [m["step"] for m in train_rows]
    assert steps == sorted(steps) and steps[-1] == 40 and len(steps) == len(set(steps))
    state = torch.load(run.dir / "checkpoints" / "step-0000040.pt", weights_only=True)
    assert state["rollbacks"] == 1 and state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1.5e-4)
    assert all(torch.isfinite(v).all() for v in state["D"].values())
    assert "rolled back to step-0000016.pt" in capsys.readouterr().err


def test_on_nan_stop_keeps_the_last_good_checkpoint_and_exits_1(tmp_path):
    cfg = resolve_config("mnist-mlp", overrides={**SETS, "on_nan": "stop"})
    with pytest.raises(DivergedError, match=r"NaN/Inf in the losses at step 20.*step-0000016.pt"):
        ganforge.train(cfg, tmp_path / "s", on_step=poison_once(19))
    assert ganforge.load(tmp_path / "s").step == 16


def test_gives_up_after_the_allowed_rollbacks(tmp_path):
    def always(step, G, D):
        if step % 8 == 3:
            with torch.no_grad():
                next(D.parameters()).fill_(float("inf"))
    cfg = resolve_config("mnist-mlp", overrides={**SETS, "nan_max_rollbacks": 2})
    with pytest.raises(DivergedError, match="after 2 rollback"):
        ganforge.train(cfg, tmp_path / "g", on_step=always)
    rows = [json.loads(l) for l in (tmp_path / "g" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "event" for r in rows) == 2


def test_cli_exit_code_1_for_divergence(tmp_path, capsys):
    from ganforge.cli import main
    # lr so large that the MLP GAN blows up quickly
    code = main(["train", "--preset", "mnist-mlp", "--run-dir", str(tmp_path / "c"), "--steps", "200", "-q",
                 "--set", "data.limit=256", "--set", "train.batch_size=32", "--set", "optim.lr_d=1e30",
                 "--set", "optim.lr_g=1e30", "--set", "on_nan=stop", "--set", "log.every=2"])
    err = capsys.readouterr().err
    assert code == 1 and "training diverged" in err and len(err.strip().splitlines()) == 1
