import json

import pytest
import torch

import ganforge
from ganforge.data.batches import BatchStream
from ganforge.errors import GanforgeError

TIMING = ("img_per_s", "elapsed_s")


def _metrics(run_dir):
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in TIMING} for m in lines]


def test_batch_stream_covers_each_epoch_once_and_is_seeded():
    s = BatchStream(10, 3, seed=5, device=torch.device("cpu"))
    assert s.per_epoch == 3
    epoch0 = torch.cat([s.next() for _ in range(3)])
    assert len(set(epoch0.tolist())) == 9   # the 10th item is the dropped remainder
    epoch1 = torch.cat([s.next() for _ in range(3)])
    assert not torch.equal(epoch0, epoch1)  # reshuffled
    t = BatchStream(10, 3, seed=5, device=torch.device("cpu"), position=3)
    assert torch.equal(torch.cat([t.next() for _ in range(3)]), epoch1)  # position alone resumes the order
    with pytest.raises(GanforgeError, match="larger than the dataset"):
        BatchStream(2, 3, 0, torch.device("cpu"))


def test_run_writes_every_file(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(), tmp_path / "run")
    d = run.dir
    assert run.step == 16 and run.epoch == 2.0
    assert (d / "config.yaml").is_file() and (d / "samples" / "real.png").is_file()
    assert sorted(p.name for p in (d / "samples").glob("step-*.png")) == ["step-0000008.png", "step-0000016.png"]
    assert (d / "checkpoints" / "latest").read_text().strip() == "step-0000016.pt"
    rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))
    assert set(rows[0]) == {"step", "kind", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "img_per_s", "lr_g", "lr_d",
                            "elapsed_s"}
    assert (d / "final.png").read_bytes() == (d / "samples" / "step-0000016.png").read_bytes()
    assert all(0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1 for r in rows)
    assert ganforge.resolve_config(None, base=run.config) == run.config
    assert run.metrics[-1]["step"] == 16


def test_seeded_runs_are_deterministic(tiny_config, tmp_path):
    a = ganforge.train(tiny_config("mnist-mlp-bn", train__steps=8), tmp_path / "a")
    b = ganforge.train(tiny_config("mnist-mlp-bn", train__steps=8), tmp_path / "b")
    c = ganforge.train(tiny_config("mnist-mlp-bn", train__steps=8, seed=1), tmp_path / "c")
    assert _metrics(a.dir) == _metrics(b.dir)
    assert _metrics(a.dir) != _metrics(c.dir)
    ga, gb = ganforge.load(a.dir).generator, ganforge.load(b.dir).generator
    for pa, pb in zip(ga.state_dict().values(), gb.state_dict().values()):
        assert torch.equal(pa, pb)


def test_d_steps_and_g_steps_count_updates(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(d_steps=2, g_steps=3, train__steps=4,
                                     log__checkpoint_every="100 steps"), tmp_path / "k")
    state = torch.load(run.dir / "checkpoints" / "step-0000004.pt", weights_only=True)
    assert state["position"] == 8                          # 2 real batches per step
    assert run.epoch == 1.0                                # 8 batches per epoch
    opt_d = state["opt_d"]["state"][0]["step"].item()
    opt_g = state["opt_g"]["state"][0]["step"].item()
    assert (opt_d, opt_g) == (8, 12)


def test_epochs_budget_and_grid_each_epoch(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__epochs=3), tmp_path / "e")
    assert run.step == 24 and run.epoch == 3.0


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tiny_config, tmp_path):
    whole = ganforge.train(tiny_config(train__steps=16), tmp_path / "whole")
    part = ganforge.train(tiny_config(train__steps=8), tmp_path / "part")
    assert part.step == 8
    resumed = ganforge.train(part.config.replace(**{"train.steps": 16}), tmp_path / "part", resume=True)
    assert resumed.step == 16
    assert _metrics(resumed.dir) == _metrics(whole.dir)
    a = ganforge.load(whole.dir).generator.state_dict()
    b = ganforge.load(resumed.dir).generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_changes_to_what_is_trained(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__steps=4), tmp_path / "r")
    with pytest.raises(GanforgeError, match="cannot change 'optim.lr_g'"):
        ganforge.train(run.config.replace(**{"optim.lr_g": 1e-3}), run.dir, resume=True)
    with pytest.raises(GanforgeError, match="nothing to resume"):
        ganforge.train(run.config, tmp_path / "empty", resume=True)


def test_new_run_refuses_a_used_or_wrong_run_dir(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__steps=2), tmp_path / "r")
    before = {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()}
    with pytest.raises(GanforgeError, match="is not empty: use --resume"):
        ganforge.train(tiny_config(train__steps=2), run.dir)
    assert {p: p.read_bytes() for p in run.dir.rglob("*") if p.is_file()} == before
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(GanforgeError, match="is a file"):
        ganforge.train(tiny_config(), f)


def test_keeps_the_last_checkpoints_only(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__steps=40, log__keep_checkpoints=2), tmp_path / "k")
    names = sorted(p.name for p in (run.dir / "checkpoints").glob("step-*.pt"))
    assert names == ["step-0000032.pt", "step-0000040.pt"]
    assert not list((run.dir / "checkpoints").glob(".*tmp"))


def test_max_seconds_stops_and_saves(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__steps=None, train__max_seconds=0.5), tmp_path / "t")
    assert run.stopped_by == "max_seconds" and run.step > 0
    assert (run.dir / "checkpoints" / f"step-{run.step:07d}.pt").is_file()
    assert (run.dir / "samples" / f"step-{run.step:07d}.png").is_file()


def test_load_and_sample(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(train__steps=4), tmp_path / "s")
    gan = ganforge.load(run.dir)
    x = gan.sample(10, seed=3)
    assert x.shape == (10, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, gan.sample(10, seed=3)) and not torch.equal(x, gan.sample(10, seed=4))
    assert gan.step == 4
    assert torch.equal(ganforge.load(run.dir / "checkpoints" / "step-0000004.pt").sample(10, seed=3), x)


def test_ema_is_the_decayed_average():
    from torch import nn

    from ganforge.training.step import update_ema
    model, ema = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(0.0)
        expected = 0.0
        for w in (1.0, 2.0, 4.0):
            model.weight.fill_(w)
            update_ema(ema, model, 0.9)
            expected = 0.9 * expected + 0.1 * w
    assert ema.weight.item() == pytest.approx(expected) == pytest.approx(0.1 * 0.81 + 0.2 * 0.9 + 0.4)


def test_ema_run_samples_from_the_average(tiny_config, tmp_path):
    run = ganforge.train(tiny_config(ema=0.5, train__steps=4), tmp_path / "ema")
    state = torch.load(run.dir / "checkpoints" / "step-0000004.pt", weights_only=True)
    loaded = ganforge.load(run.dir).generator.state_dict()
    assert all(torch.equal(loaded[k], state["G_ema"][k]) for k in loaded)
    assert any(not torch.equal(state["G"][k], state["G_ema"][k]) for k in loaded)


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    run_dir = tmp_path / "sig"
    p = subprocess.Popen([sys.executable, "-m", "ganforge", "train", "--preset", "mnist-mlp", "--run-dir",
                          str(run_dir), "--steps", "100000", "-q", "--set", "data.limit=256",
                          "--set", "train.batch_size=32", "--set", "log.checkpoint_every=100000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text():
        assert time.time() < deadline and p.poll() is None
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "stopped by signal" in out and "--resume" in err
    step = int(out.split("step ")[1].split()[0])
    assert 0 < step < 100000
    assert (run_dir / "checkpoints" / f"step-{step:07d}.pt").is_file()
    assert ganforge.load(run_dir).step == step
