"""Class-conditional GANs: G(z, y) and D(x, y) through the one loop, sampling by class, ImageFolder output."""

import pytest
import torch
from torchvision.datasets import ImageFolder

import ganforge
from ganforge.cli import main
from ganforge.config import DataConfig, resolve_config
from ganforge.data import load_dataset
from ganforge.errors import GanforgeError
from ganforge.metrics.features import domain_classifier
from ganforge.models import build_discriminator, build_generator


@pytest.mark.parametrize("preset,shape", [("mnist-mlp", (1, 28, 28)), ("mnist-dcgan", (1, 32, 32))])
def test_conditional_models_take_labels(preset, shape):
    cfg = resolve_config(preset, overrides={"conditional": True})
    G, D = build_generator(cfg.model, shape, 10), build_discriminator(cfg.model, shape, 10)
    y = torch.arange(10)
    x = G(torch.randn(10, 100), y)
    assert x.shape == (10, *shape) and D(x, y).shape == (10,)
    # the label changes the output: same z, different class → different image and logit
    z = torch.randn(1, 100).repeat(2, 1)
    G.eval()
    two = G(z, torch.tensor([3, 7]))
    assert not torch.allclose(two[0], two[1])
    assert not torch.allclose(D(two[:1], torch.tensor([3])), D(two[:1], torch.tensor([7])))


def test_conditional_needs_labels(tmp_path, capsys):
    with pytest.raises(GanforgeError, match="needs labelled image data"):
        resolve_config("ring-8", overrides={"conditional": True})
    assert main(["train", "--preset", "mnist-mlp", "--set", "conditional=true", "--set", "model.d_pack=2",
                 "--run-dir", str(tmp_path / "r")]) == 2
    assert "d_pack: 1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_conditional_run_draws_the_class_asked_for(tmp_path, capsys):
    # mnist-mlp with cgan.py's Adam betas (0.5, 0.999): with β1 0.9 this short run collapses onto one digit
    cfg = resolve_config("mnist-mlp", overrides={"conditional": True, "train.epochs": None, "train.steps": 800,
                                                 "optim.betas": [0.5, 0.999],
                                                 "log.progress": False, "eval.every": "off", "seed": 0})
    run = ganforge.train(cfg, tmp_path / "run")
    gan = run.load()
    assert gan.classes == [str(k) for k in range(10)]
    mnist = load_dataset(DataConfig())
    clf = domain_classifier(mnist.x, mnist.y, "mnist5k", verbose=False)
    hits = 0
    for k in range(10):
        x = gan.generate(gan.noise(50, seed=k), gan.labels(50, k))
        hits += int((clf(x)["probs"].argmax(1) == k).sum())
    assert hits / 500 > 0.5        # chance is 0.1
    # --class all → an ImageFolder that torchvision reads back, n per class
    assert main(["sample", str(run.dir), "--class", "all", "--n", "3", "--seed", "0",
                 "--out", str(tmp_path / "aug") + "/"]) == 0
    folder = ImageFolder(str(tmp_path / "aug"))
    assert len(folder) == 30 and folder.classes == [str(k) for k in range(10)]
    assert [folder.targets.count(k) for k in range(10)] == [3] * 10
    assert main(["sample", str(run.dir), "--class", "7", "--n", "4", "--out", str(tmp_path / "s.npy")]) == 0
    assert main(["sample", str(run.dir), "--class", "all", "--n", "2", "--out", str(tmp_path / "g.png")]) == 0
    assert main(["sample", str(run.dir), "--class", "12", "--n", "2", "--out", str(tmp_path / "g.png")]) == 2
    assert "--class must be 'all', 0..9" in capsys.readouterr().err
    # the export keeps the classes
    assert main(["export", str(run.dir), "--out", str(tmp_path / "g.safetensors")]) == 0
    assert ganforge.load(tmp_path / "g.safetensors").classes == gan.classes


def test_unconditional_generator_refuses_a_class(tiny_config, tmp_path, capsys):
    run = ganforge.train(tiny_config(train__steps=2), tmp_path / "run")
    assert main(["sample", str(run.dir), "--class", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "--class applies to conditional runs" in capsys.readouterr().err
    assert main(["sample", str(run.dir), "--n", "5", "--out", str(tmp_path / "flat") + "/"]) == 0
    assert len(list((tmp_path / "flat").glob("*.png"))) == 5


def test_conditional_auto_follows_the_datas_labels(tmp_path, photo_folder):
    import shutil

    import ganforge

    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((photo_folder / "photo").glob("*.jpg"))[:16]:
        shutil.copy(f, flat / f.name)
    sets = {"train.steps": 2, "train.max_seconds": None, "train.batch_size": 8, "log.progress": False,
            "eval.every": "off", "model.g_features": 4, "model.d_features": 4}
    labelled = ganforge.train(resolve_config("mnist-conv", overrides={**sets, "data.limit": 64}), tmp_path / "a")
    unlabelled = ganforge.train(resolve_config("mnist-conv", overrides={**sets, "data.name": str(flat)}),
                                tmp_path / "b")
    assert resolve_config("mnist-conv").conditional == "auto"
    assert labelled.load().n_classes == 10 and unlabelled.load().n_classes == 0
    packed = ganforge.train(resolve_config("ring-8", overrides={"conditional": "auto", "train.steps": 2,
                                                               "log.progress": False}), tmp_path / "c")
    assert packed.load().n_classes == 0  # toy data, and D judges packs: auto means unconditional


def test_matched_labels_take_the_reference_counts_by_largest_remainder():
    from ganforge.models import matched_labels

    def counts(y, k):
        return torch.bincount(y, minlength=k).tolist()

    assert counts(matched_labels(10, torch.tensor([5, 3, 2]), seed=3), 3) == [5, 3, 2]
    assert counts(matched_labels(7, torch.ones(3), seed=0), 3) == [3, 2, 2]  # 7/3 each: ties go to the lower class
    assert counts(matched_labels(5, torch.tensor([6, 3, 1]), seed=0), 3) == [3, 2, 0]  # shares 3, 1.5, 0.5
    a, b = matched_labels(50, torch.ones(10), seed=1), matched_labels(50, torch.ones(10), seed=2)
    assert torch.equal(a, matched_labels(50, torch.ones(10), seed=1)) and not torch.equal(a, b)
    assert counts(a, 10) == counts(b, 10) == [5] * 10
    with pytest.raises(ValueError):
        matched_labels(4, torch.zeros(3), seed=0)


def test_eval_labels_follow_the_reference_images_labels():
    from types import SimpleNamespace

    from ganforge.metrics import eval_labels

    ref = SimpleNamespace(y=torch.tensor([0, 0, 0, 1, 2, 2]))  # proportions 1/2, 1/6, 1/3
    assert torch.bincount(eval_labels(12, 3, ref, seed=0), minlength=3).tolist() == [6, 2, 4]
    assert torch.bincount(eval_labels(12, 4, SimpleNamespace(), seed=0), minlength=4).tolist() == [3, 3, 3, 3]
