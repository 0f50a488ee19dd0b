import math

import numpy as np
import pytest
import torch

import ganforge
from ganforge.config import Component, resolve_config
from ganforge.data.toy import Mixture, grid25, ring8
from ganforge.errors import GanforgeError
from ganforge.metrics import evaluate
from ganforge.metrics.toy import ks_statistic_1d, w1_distance_1d
from ganforge.models import minibatch_moments


def test_moments_preprocess_matches_numpy():
    x = np.random.default_rng(0).gamma(2.0, size=(500, 3))
    got = minibatch_moments(torch.tensor(x)).numpy().reshape(4, 3)
    mean, std = x.mean(0), x.std(0)
    z = (x - mean) / std
    assert np.allclose(got[0], mean) and np.allclose(got[1], std)
    assert np.allclose(got[2], (z ** 3).mean(0)) and np.allclose(got[3], (z ** 4).mean(0) - 3)


def test_exact_samples_score_near_zero_and_shift_equals_w1():
    target = Mixture([Component(mean=(4.0,), std=1.25)])
    torch.manual_seed(0)
    x = target.sample(20000)
    m = evaluate(x, target)
    assert m["w1"] < 0.02 and m["ks"] < 0.015
    assert abs(m["mean_error"]) < 0.03 and abs(m["std_error"]) < 0.03
    shifted = evaluate(x + 0.5, target)
    assert shifted["w1"] == pytest.approx(0.5, abs=0.02)       # W1 of a shift is the shift
    assert shifted["mean_error"] == pytest.approx(0.5, abs=0.03)


def test_w1_and_ks_against_hand_values():
    # A point mass at the target's median: W1 = E|X - 4| = std * sqrt(2/pi); KS = 0.5.
    target = Mixture([Component(mean=(4.0,), std=1.25)])
    point = torch.full((1000,), 4.0)
    assert w1_distance_1d(point, target) == pytest.approx(1.25 * math.sqrt(2 / math.pi), rel=1e-3)
    assert ks_statistic_1d(point, target) == pytest.approx(0.5, abs=1e-9)


def test_2d_metrics_on_exact_and_collapsed_samples():
    for comps, k in ((ring8(), 8), (grid25(), 25)):
        target = Mixture(comps)
        torch.manual_seed(1)
        m = evaluate(target.sample(10000), target)
        assert m["modes_covered"] == k == m["modes_total"]
        # P(|eps| <= 3 sigma) for a 2-D isotropic Gaussian: 1 - exp(-9/2)
        assert m["hq_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.004) and m["kl_modes"] < 0.01
        one = target.means[3] + 0.01 * torch.randn(2000, 2)
        c = evaluate(one, target)
        assert c["modes_covered"] == 1 and c["kl_modes"] == pytest.approx(math.log(k), rel=1e-6)
        far = evaluate(torch.full((100, 2), 10.0), target)
        assert far["hq_fraction"] == 0 and far["modes_covered"] == 0


def test_toy_geometry():
    r = torch.tensor([c.mean for c in ring8()])
    assert torch.allclose(r.norm(dim=1), torch.full((8,), 2.0))
    g = torch.tensor([c.mean for c in grid25()])
    assert sorted(set(g[:, 0].tolist())) == [-4, -2, 0, 2, 4] and len(g) == 25
    assert {c.std for c in ring8()} == {0.02} and {c.std for c in grid25()} == {0.05}


def test_mixture_weights_and_sampling():
    target = Mixture([Component(mean=(-2.0,), std=0.1, weight=3), Component(mean=(2.0,), std=0.1, weight=1)])
    torch.manual_seed(0)
    x = target.sample(20000)
    assert (x < 0).double().mean().item() == pytest.approx(0.75, abs=0.01)


@pytest.mark.parametrize("components, message", [
    ([{"mean": 0, "std": -1}], "std must be > 0"),
    ([{"mean": 0, "std": 1, "weight": 0}], "weights must sum to a positive number"),
    ([], "data.components is empty"),
    ([{"mean": 0, "std": 1}, {"mean": [0, 1], "std": 1}], "same number of coordinates"),
    ([{"mean": 0, "sd": 1}], "unknown config key 'data.components\\[0\\].sd'.*did you mean"),
])
def test_bad_mixtures(components, message):
    with pytest.raises(GanforgeError, match=message):
        resolve_config("gaussian-1d", overrides={"data.components": components})


def test_d_input_size_must_match_the_preprocess(tmp_path):
    cfg = resolve_config("gaussian-1d", overrides={"model.d_in": 500, "train.steps": 1})
    with pytest.raises(GanforgeError, match="model.d_in is 500 but D's input .* has 4 features"):
        ganforge.train(cfg, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_faithful_gaussian_run_logs_metrics_and_pictures(tmp_path):
    cfg = resolve_config("gaussian-1d", overrides={"train.steps": 20, "log.sample_every": "10 steps",
                                                    "log.progress": False, "eval.n": 2000})
    run = ganforge.train(cfg, tmp_path / "g")
    evals = [m for m in run.metrics if m["kind"] == "eval"]
    assert [m["step"] for m in evals] == [10, 20]
    assert {"w1", "ks", "mean", "std", "mean_error", "std_error"} <= set(evals[0])
    assert (run.dir / "final.png").is_file() and (run.dir / "samples" / "real.png").is_file()
    x = ganforge.load(run.dir).sample(7, seed=0)
    assert x.shape == (7, 1)
    # 20 D updates and 20 G updates per step
    state = torch.load(run.dir / "checkpoints" / "step-0000020.pt", weights_only=True)
    assert state["position"] == 400


@pytest.mark.slow
def test_short_ring_run_moves_toward_covering_the_modes(tmp_path):
    cfg = resolve_config("ring-8", overrides={"train.steps": 2000, "log.sample_every": "2000 steps", "ema": 0.0,
                                               "log.progress": False, "eval.n": 2000})
    run = ganforge.train(cfg, tmp_path / "ring")
    from ganforge.data import load_dataset
    from ganforge.models import build_generator, noise
    torch.manual_seed(cfg.seed)  # the untrained G, exactly as training built it
    G0 = build_generator(cfg.model, (2,)).eval()
    with torch.no_grad():
        x0 = G0(noise(cfg.model, 2000, generator=torch.Generator().manual_seed(cfg.eval.seed)))
    before = evaluate(x0, load_dataset(cfg.data))["modes_covered"]
    after = run.final_metrics["modes_covered"]
    assert before <= 2 and after >= 6


def test_eval_cli_is_deterministic_and_appends(tmp_path, capsys):
    import json

    from ganforge.cli import main
    cfg = resolve_config("gaussian-1d-mlp", overrides={"train.steps": 50, "log.progress": False})
    run = ganforge.train(cfg, tmp_path / "g")
    assert main(["eval", str(run.dir), "--n", "3000", "--json"]) == 0
    assert main(["eval", str(run.dir), "--n", "3000", "--json"]) == 0
    first, second = [json.loads(l) for l in capsys.readouterr().out.strip().splitlines()]
    assert first == second and first["n"] == 3000 and first["step"] == 50
    assert len((run.dir / "eval.jsonl").read_text().splitlines()) == 2
    assert main(["sample", str(run.dir), "--n", "5", "--out", str(tmp_path / "x.npy")]) == 0
    assert np.load(tmp_path / "x.npy").shape == (5, 1)
    assert main(["sample", str(run.dir), "--n", "500", "--out", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 1000


def test_toy_resume_matches_an_uninterrupted_run(tmp_path):
    sets = {"log.progress": False, "log.sample_every": "10 steps", "log.checkpoint_every": "10 steps",
            "eval.n": 500, "log.every": 5}
    whole = ganforge.train(resolve_config("gaussian-1d-mlp", overrides={**sets, "train.steps": 40}), tmp_path / "w")
    part = ganforge.train(resolve_config("gaussian-1d-mlp", overrides={**sets, "train.steps": 20}), tmp_path / "p")
    resumed = ganforge.train(part.config.replace(**{"train.steps": 40}), part.dir, resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("img_per_s", "elapsed_s")} for r in rows]
    assert strip(resumed.metrics) == strip(whole.metrics)
    assert resumed.final_metrics == whole.final_metrics


def test_best_checkpoint_follows_the_best_evaluation(tmp_path):
    import json
    cfg = resolve_config("gaussian-1d-mlp", overrides={"train.steps": 600, "log.sample_every": "100 steps",
                                                        "log.progress": False, "eval.n": 2000, "ema": 0.0})
    run = ganforge.train(cfg, tmp_path / "b")
    evals = [m for m in run.metrics if m["kind"] == "eval"]
    best = min(evals, key=lambda m: m["w1"])
    info = json.loads((run.dir / "checkpoints" / "best.json").read_text())
    assert info["step"] == best["step"] and info["w1"] == best["w1"]
    state = torch.load(run.dir / "checkpoints" / "best.pt", weights_only=True)
    assert state["step"] == best["step"] and state["metrics"]["w1"] == best["w1"]
    # best.pt is a full checkpoint: the evaluation's own draw (as `ganforge eval` makes it) reproduces the number
    gan = ganforge.load(run.dir / "checkpoints" / "best.pt")
    x = gan.generate(gan.noise(2000, seed=cfg.eval.seed))
    assert evaluate(x, load_dataset_for(cfg))["w1"] == pytest.approx(best["w1"], abs=1e-6)


def load_dataset_for(cfg):
    from ganforge.data import load_dataset
    return load_dataset(cfg.data)
