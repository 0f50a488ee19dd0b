"""GAN-train / GAN-test (Shmelkov et al. 2018): the accuracy helpers by hand, and `eval --metrics` end to end."""

import json

import pytest
import torch

import ganforge
from ganforge.cli import main
from ganforge.config import resolve_config
from ganforge.metrics.tstr import accuracy, generated_set, per_class_accuracy

QUICK = {"train.batch_size": 16, "train.epochs": None, "train.steps": 2, "log.progress": False, "eval.every": "off",
         "data.limit": 200, "train.max_seconds": None, "model.g_features": 8, "model.d_features": 8}


class _Reads:
    """A stand-in classifier that reads image i as ``answers[i]``."""

    def __init__(self, answers, classes):
        self.answers, self.classes = torch.tensor(answers), classes

    def __call__(self, x):
        return {"probs": torch.nn.functional.one_hot(self.answers[: len(x)], self.classes).double()}


def test_accuracy_and_per_class_accuracy_by_hand():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    reads = _Reads([0, 1, 1, 1, 0, 2], 4)
    assert accuracy(reads, torch.zeros(6, 1, 2, 2), y) == pytest.approx(4 / 6)
    assert per_class_accuracy(reads, torch.zeros(6, 1, 2, 2), y, 4) == (pytest.approx(4 / 6), [0.5, 1.0, 0.5, None])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tstr")
    return {c: ganforge.train(resolve_config("mnist-conv", overrides={**QUICK, "conditional": c}), root / c).dir
            for c in ("true", "false")}


def test_generated_set_is_class_balanced_and_seeded(runs):
    gan = ganforge.load(runs["true"])
    x, y = generated_set(gan, 30, seed=4)
    assert x.shape == (30, 1, 28, 28) and torch.equal(torch.bincount(y), torch.full((10,), 3))
    assert torch.equal(generated_set(gan, 30, seed=4)[0], x)


def test_eval_gan_train_and_gan_test(runs, capsys):
    assert main(["eval", str(runs["true"]), "--metrics", "gan_test,gan_train", "--n", "100", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= record["gan_test"] <= 1 and 0 <= record["gan_train"] <= 1
    assert len(record["gan_test_per_class"]) == 10 and record["gan_train_images"] == 100
    assert "fid" not in record  # only what was asked for
    lines = (runs["true"] / "eval.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["gan_test"] == record["gan_test"]


def test_gan_train_on_an_unconditional_run_is_one_line_and_exit_2(runs, capsys):
    assert main(["eval", str(runs["false"]), "--metrics", "gan_train"]) == 2
    err = capsys.readouterr().err.strip()
    assert "class-conditional" in err and len(err.splitlines()) == 1
    assert not (runs["false"] / "eval.jsonl").exists()
