"""The cifar10 preset on a handful of real CIFAR-10 JPEGs (tests/data/cifar10: 2 per class), and
`--data cifar10` when torchvision's files are missing."""

import json
from pathlib import Path

import pytest
from PIL import Image

from ganforge.cli import main
from ganforge.config import resolve_config

PHOTOS = Path(__file__).parent / "data" / "cifar10"


def test_cifar10_preset_is_colour_32px_conditional_and_scores_with_inception():
    cfg = resolve_config("cifar10")
    assert (cfg.data.name, cfg.data.image_size, cfg.data.channels) == ("cifar10", 32, 3)
    assert cfg.conditional == "auto" and cfg.model.d_norm == "none" and cfg.ema > 0
    assert cfg.train.max_seconds == 1800 and cfg.eval.every == "off" and cfg.eval.features == "inception"


@pytest.mark.slow
def test_cifar10_preset_trains_on_real_cifar_jpegs_and_samples_each_class(tmp_path):
    run = tmp_path / "run"
    code = main(["train", "--preset", "cifar10", "--data", str(PHOTOS), "--steps", "3", "-q", "--run-dir", str(run),
                 "--set", "train.batch_size=8", "--set", "model.g_features=8", "--set", "model.d_features=8"])
    assert code == 0
    info = json.loads((run / "data.json").read_text())
    assert info["layout"] == "classes" and len(info["classes"]) == 10
    out = tmp_path / "classes.png"
    assert main(["sample", str(run), "--class", "all", "--n", "2", "--out", str(out)]) == 0
    with Image.open(out) as im:  # a row per class: 10 rows of 2 colour images at 32 px
        assert im.mode == "RGB" and im.size[1] > 10 * 32 > im.size[0]


def test_cifar10_by_name_offline_is_one_sentence_and_exit_2(tmp_path, capsys):
    code = main(["train", "--preset", "cifar10", "--steps", "1", "--run-dir", str(tmp_path / "run"),
                 "--set", f"data.root={tmp_path}", "--set", "data.download=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "cifar-10-batches-py" in err[0] and "data_batch_1" in err[0] and "Traceback" not in err[0]
