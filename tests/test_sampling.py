"""Sampling controls: truncation, per-index reproducible sampling, streamed outputs."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.models import noise


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    cfg = resolve_config("mnist-mlp-tuned", overrides={"data.limit": 64, "train.batch_size": 8, "train.epochs": None,
                                                       "train.steps": 1, "log.progress": False, "eval.every": "off",
                                                       "conditional": True})
    return ganforge.train(cfg, tmp_path_factory.mktemp("s") / "run").dir


def test_truncation_keeps_every_coordinate_within_psi_with_the_truncated_normal_variance():
    cfg = resolve_config("mnist-mlp").model
    z = noise(cfg, 2000, generator=torch.Generator().manual_seed(0), truncation=1.0)
    assert z.shape == (2000, 100) and float(z.abs().max()) <= 1.0
    # Var of N(0, 1) truncated to [-1, 1]: 1 - 2 φ(1) / (2 Φ(1) - 1) = 0.29112
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert float(z.var()) == pytest.approx(1 - 2 * phi / (2 * big_phi - 1), abs=0.005)
    again = noise(cfg, 2000, generator=torch.Generator().manual_seed(0), truncation=1.0)
    assert torch.equal(z, again)
    with pytest.raises(GanforgeError, match="Gaussian z"):
        noise(dataclasses.replace(cfg, z_dist="uniform"), 4, truncation=0.5)
    with pytest.raises(GanforgeError, match="must be > 0"):
        noise(cfg, 4, truncation=0.0)


def test_sample_i_depends_on_seed_and_i_only(cond_run):
    gan = ganforge.load(cond_run)
    whole = gan.sample(2300, seed=7)
    assert torch.equal(gan.sample(1200, seed=7), whole[:1200])
    split = torch.cat([x for x, _ in gan.iter_samples(2300, 7, batch_size=333)])
    assert torch.equal(split, whole)
    assert not torch.equal(gan.sample(10, seed=8), whole[:10])
    # the default class labels are per index too
    labels = torch.cat([y for _, y in gan.iter_samples(2300, 7, batch_size=1000)])
    assert torch.equal(torch.cat([y for _, y in gan.iter_samples(700, 7, batch_size=64)]), labels[:700])
    assert set(labels.tolist()) == set(range(10))
    truncated = gan.sample(50, seed=7, truncation=0.5)
    assert truncated.shape == whole[:50].shape and not torch.equal(truncated, whole[:50])


def test_cli_sample_streams_npy_and_folders_the_same_for_any_n(cond_run, tmp_path, capsys):
    assert main(["sample", str(cond_run), "--n", "1500", "--seed", "4", "--out", str(tmp_path / "a.npy")]) == 0
    assert main(["sample", str(cond_run), "--n", "600", "--seed", "4", "--out", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (1500, 1, 28, 28) and a.dtype == np.float32 and np.array_equal(a[:600], b)
    gan = ganforge.load(cond_run)
    assert np.array_equal(a, gan.sample(1500, seed=4).numpy())
    assert main(["sample", str(cond_run), "--n", "30", "--seed", "4", "--out", str(tmp_path / "f") + "/"]) == 0
    files = sorted((tmp_path / "f").rglob("*.png"))
    assert len(files) == 30 and {p.parent.name for p in files} <= {str(k) for k in range(10)}
    labels = torch.cat([y for _, y in gan.iter_samples(30, 4)])
    assert [p.parent.name for p in sorted(files, key=lambda p: p.name)] == [str(int(k)) for k in labels]
    out = capsys.readouterr().out
    assert "seed 4" in out


def test_truncation_on_the_command_line(cond_run, tmp_path, capsys):
    assert main(["sample", str(cond_run), "--n", "8", "--seed", "1", "--truncation", "0.7",
                 "--out", str(tmp_path / "t.npy")]) == 0
    gan = ganforge.load(cond_run)
    assert np.array_equal(np.load(tmp_path / "t.npy"), gan.sample(8, seed=1, truncation=0.7).numpy())
    assert main(["interpolate", str(cond_run), "--rows", "2", "--steps", "3", "--truncation", "0.5",
                 "--out", str(tmp_path / "w.png")]) == 0
    capsys.readouterr()
    assert main(["sample", str(cond_run), "--n", "8", "--truncation", "-1", "--out", str(tmp_path / "u.npy")]) == 2
    assert "truncation must be > 0" in capsys.readouterr().err and not (tmp_path / "u.npy").exists()


def test_sample_uses_best_pt_when_the_last_checkpoint_scored_worse(tmp_path, capsys):
    cfg = resolve_config("ring-8", overrides={"train.steps": 4, "log.progress": False, "eval.n": 200,
                                              "log.sample_every": "2 steps", "log.checkpoint_every": "2 steps"})
    run = ganforge.train(cfg, tmp_path / "r")
    ckpts = run.dir / "checkpoints"
    evals = [r for r in run.metrics if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    lines_before = run.metrics

    def rewrite(last_modes):  # step 2 is best.pt with 6 modes; the last (step 4) scored last_modes
        (ckpts / "best.pt").write_bytes((ckpts / "step-0000002.pt").read_bytes())
        (ckpts / "best.json").write_text(json.dumps({**evals[0], "modes_covered": 6}) + "\n")
        lines = [{**r, "modes_covered": last_modes} if r["kind"] == "eval" and r["step"] == 4 else r
                 for r in lines_before]
        (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))

    rewrite(last_modes=3)
    gan = ganforge.load(run.dir)
    assert gan.step == 2 and gan.source.name == "best.pt"
    assert "best.pt (step 2, modes_covered 6): the last checkpoint (step 4) scored worse (modes_covered 3)" \
        in gan.chosen
    assert main(["sample", str(run.dir), "--n", "4", "--out", str(tmp_path / "s.npy"), "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "using checkpoints/best.pt (step 2" in out and "best.pt (step 2;" in out
    assert main(["eval", str(run.dir), "--n", "200"]) == 0  # eval says it too, and scores best.pt
    out = capsys.readouterr().out
    assert out.startswith("ganforge: using checkpoints/best.pt (step 2") and "best.pt (step 2)" in out
    rewrite(last_modes=6)  # a tie: the newest stands
    gan = ganforge.load(run.dir)
    assert gan.step == 4 and gan.chosen is None
    # a checkpoint file is loaded as named, whatever best.pt says
    rewrite(last_modes=3)
    assert ganforge.load(ckpts / "step-0000004.pt").step == 4
