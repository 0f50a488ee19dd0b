"""Text: a UTF-8 file as one-hot windows, the character GAN of Gulrajani et al. 2017 (preset chars), the text
metrics against hand-computed values, and bad text input (one line, exit 2)."""

import html
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from ganforge.cli import main
from ganforge.config import DataConfig, resolve_config
from ganforge.data import load_dataset
from ganforge.data.text import TextData, decode, one_hot
from ganforge.errors import GanforgeError
from ganforge.metrics.text import TextReference, inner_words, js_divergence, ngrams
from ganforge.models import build_discriminator, build_generator

SHAKESPEARE = Path(__file__).parent / "data" / "text" / "shakespeare-12k.txt"
SMALL = ["--set", "model.widths=[16]", "--set", "model.blocks=1", "--set", "d_steps=2", "--set", "train.batch_size=8",
         "--set", "log.every=1", "--set", "log.sample_every=2 steps", "--set", "log.checkpoint_every=2 steps", "-q"]


def test_windows_are_one_hot_and_the_last_tenth_is_held_out():
    data = load_dataset(DataConfig(name=str(SHAKESPEARE), seq_len=16))
    text = SHAKESPEARE.read_text()
    assert data.kind == "text" and data.shape == (len(data.alphabet), 16)
    assert data.train_text + data.held == text and len(data.held) == int(len(text) * 0.1)
    assert len(data) == len(data.train_text) - 15
    x = data.take(torch.tensor([0, 100]))
    assert x.shape == (2, len(data.alphabet), 16) and torch.equal(x.sum(1), torch.ones(2, 16))
    assert data.decode(x) == [text[:16], text[100:116]]


def test_char_nets_emit_a_softmax_per_position_that_d_reads():
    cfg = resolve_config("chars", overrides={"model.widths": [8], "model.blocks": 2}).model
    G, D = build_generator(cfg, (5, 12)), build_discriminator(cfg, (5, 12))
    x = G(torch.randn(3, cfg.z_dim))
    assert x.shape == (3, 5, 12) and torch.allclose(x.sum(1), torch.ones(3, 12))
    assert D(x).shape == (3,) and D(one_hot(torch.randint(5, (3, 12)), 5)).shape == (3,)


def test_gumbel_g_emits_one_hot_samples_while_training_and_its_softmax_otherwise():
    cfg = resolve_config("chars", overrides={"model.widths": [8], "model.blocks": 1, "model.gumbel": 0.5}).model
    torch.manual_seed(0)
    G, z = build_generator(cfg, (5, 12)), torch.randn(400, cfg.z_dim)
    x = G(z)
    assert torch.equal(x.detach().sum(1), torch.ones(400, 12)) and set(x.detach().unique().tolist()) == {0.0, 1.0}
    x[:, 0].sum().backward()  # straight through: the softmax's gradient reaches G
    assert G.output.weight.grad.abs().sum() > 0
    G.eval()
    with torch.no_grad():
        p = G(z)
    assert torch.allclose(p.sum(1), torch.ones(400, 12)) and 0 < p.min() and p.max() < 1
    # the one-hot samples follow the softmax: each character's share within 0.05 of its mean probability
    assert (x.detach().mean((0, 2)) - p.mean((0, 2))).abs().max() < 0.05
    with pytest.raises(GanforgeError, match="model.gumbel applies to model.arch chars"):
        resolve_config("fsdd", overrides={"model.gumbel": 0.5})


def test_js_divergence_and_word_share_by_hand():
    # P = {a: 1/2, b: 1/2}, Q = {a: 1}: M = {a: 3/4, b: 1/4};
    # KL(P||M) = 1/2 log2(2/3) + 1/2 log2(2), KL(Q||M) = log2(4/3); JS = their mean
    by_hand = (0.5 * math.log2(2 / 3) + 0.5 + math.log2(4 / 3)) / 2
    assert js_divergence(Counter("ab"), Counter("aa")) == pytest.approx(by_hand)
    assert js_divergence(Counter("ab"), Counter("cd")) == 1.0 and js_divergence(Counter("ab"), Counter("ba")) == 0
    assert ngrams(["abc", "ab"], 2) == Counter({"ab": 2, "bc": 1})  # never across two samples
    assert inner_words("ld, the King's men wer") == ["the", "king's", "men"]
    ref = TextReference("the king is dead. long live the king", "held out")
    found = ref.score(["xx the king zzz yy", "a long live the k"])  # inner words: the king zzz | long live the
    assert found["in_vocab"] == pytest.approx(5 / 6, abs=1e-4) and found["novelty"] == 1.0
    assert ref.score(["long live the k"])["novelty"] == 0.0


def test_decode_reads_the_most_likely_character():
    soft = torch.tensor([[[0.2, 0.7], [0.8, 0.3]]])  # V = 2, L = 2
    assert decode(soft, "ab") == ["ba"]


@pytest.mark.slow
def test_chars_trains_on_text_samples_lines_and_scores_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "chars", "--data", str(SHAKESPEARE), "--steps", "4", "--run-dir", str(run),
                 *SMALL]) == 0
    lines = (run / "final.txt").read_text().splitlines()
    assert len(lines) == 64 and all(len(line) == 32 for line in lines)
    assert len((run / "samples" / "real.txt").read_text().splitlines()) == 64
    out = tmp_path / "lines.txt"
    assert main(["sample", str(run), "--n", "5", "--seed", "1", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "50"]) == 0
    record = json.loads((run / "eval.jsonl").read_text().splitlines()[-1])
    assert 0 < record["js_4"] <= 1 and 0 <= record["novelty"] <= 1
    assert main(["sample", str(run), "--out", str(tmp_path / "x.png")]) == 2  # a text G writes no grid
    assert main(["report", str(run)]) == 0
    assert html.escape(lines[0]) in (run / "report.html").read_text()
    assert main(["interpolate", str(run), "--out", str(tmp_path / "walk.png")]) == 2


@pytest.mark.parametrize("content, says", [
    (b"", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    (b"caf\xe9 au lait, " * 10, "not UTF-8"),
    (b"too short", "data.seq_len = 32"),
])
def test_bad_text_is_one_line_and_exit_2(tmp_path, capsys, content, says):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    code = main(["train", "--preset", "chars", "--data", str(path), "--steps", "1", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0] and not (tmp_path / "r").exists()


def test_text_with_an_image_preset_and_images_with_chars_are_refused(tmp_path, capsys):
    assert main(["train", "--preset", "mnist-conv", "--data", str(SHAKESPEARE), "--steps", "1",
                 "--run-dir", str(tmp_path / "a")]) == 2
    assert "needs model.arch chars" in capsys.readouterr().err
    assert main(["train", "--preset", "chars", "--data", "mnist5k", "--steps", "1",
                 "--run-dir", str(tmp_path / "b")]) == 2
    assert "reads text" in capsys.readouterr().err


def test_tinyshakespeare_offline_is_one_sentence(tmp_path, capsys):
    code = main(["train", "--preset", "chars", "--steps", "1", "--run-dir", str(tmp_path / "run"),
                 "--set", f"data.root={tmp_path}", "--set", "data.download=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tinyshakespeare/input.txt" in err[0]


def test_text_data_keeps_a_fixed_alphabet_when_given():
    data = TextData("abcabc" * 10, "abc", 4, "t", alphabet="cba")
    assert data.decode(data.take(torch.tensor([0]))) == ["abca"] and data.shape == (3, 4)


def test_the_real_baseline_of_text_is_training_windows_against_the_held_out_tenth(capsys):
    assert main(["eval", "--real-baseline", "--data", str(SHAKESPEARE), "--n", "100"]) == 0
    out = capsys.readouterr().out
    assert "100 training-text windows" in out and "novelty   0.0000" in out  # copies of the training text
