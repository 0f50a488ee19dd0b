"""The benchmarks' own tests: the harness, the index, and two benchmarks' machinery on small budgets.
(tests/ imports nothing from benchmarks/; these run in the same `make test`.)"""

import json

import pytest

import ganforge
from benchmarks import harness, index
from benchmarks import throughput as tp
from benchmarks.soak import KINDS, soak


def test_record_appends_a_row_with_the_machine_and_reads_it_back(tmp_path):
    row = harness.record("demo", {"preset": "p", "ratio": 1.5}, results=tmp_path)
    again = harness.record("demo", {"preset": "q"}, results=tmp_path)
    got = harness.rows("demo", results=tmp_path)
    assert [r["preset"] for r in got] == ["p", "q"] and got[0] == json.loads(json.dumps(row))
    assert {"date", "host", "commit", "torch", "cores"} <= set(again)
    assert harness.record("demo", {"x": 1}, argparse_ns(record=False), results=tmp_path) and \
        len(harness.rows("demo", results=tmp_path)) == 2  # --no-record appends nothing


def argparse_ns(**kw):
    import argparse
    return argparse.Namespace(**kw)


def test_halves_are_disjoint_fixed_and_sorted():
    a, b = harness.halves(2500)
    a2, _ = harness.halves(2500)
    assert len(a) == len(b) == 2500 and not set(a.tolist()) & set(b.tolist())
    assert a.equal(a2) and bool((a[1:] > a[:-1]).all())


def test_run_dir_names_differ_per_lever():
    assert harness.run_dir_name("p", ["r1=0.1"], 120, 0) != harness.run_dir_name("p", ["r1=0.3"], 120, 0)
    assert harness.run_dir_name("p", [], 120, 0) == "p-120-0"


def test_the_index_is_generated_from_the_results_not_edited():
    """benchmarks/README.md is what `python -m benchmarks.index` writes from results/ right now."""
    assert index.README.read_text() == index.render(), "run: python -m benchmarks.index"


def test_benchmark_counts_the_mnist_mlp_steps_flops_by_hand():
    """mnist-mlp: G 100-256-256-784, D 784-256-256-1. Multiply-adds per sample: G 291,840, D 266,496.
    A step (1 D + 1 G update) per real image: G forward + D forward/backward on real and on fake (3+3)
    + G forward/backward (3) + D forward and input gradient (2) = 4G + 8D = 3,299,328 MACs = 6,598,656
    FLOPs. The GEMM-ceiling plan times exactly those products: 128 x that, in 27 matrix products
    (G: 3 forward + 3 x 3 with gradients; D: 3 x 3 in the joint real+fake pass + 3 x 2 in G's step)."""
    cfg = ganforge.resolve_config("mnist-mlp")
    assert tp.flops_per_image(cfg, (1, 28, 28)) == 6_598_656
    ops, flops = tp.gemm_plan(cfg, (1, 28, 28))
    assert flops == 128 * 6_598_656
    assert len(ops) == 3 + 9 + 9 + 6
    assert all(op().dim() == 2 for op in ops)
    plain = ganforge.resolve_config("mnist-mlp", overrides={"train.fast": False})
    ops2, flops2 = tp.gemm_plan(plain, (1, 28, 28))  # two D passes of B rows: same FLOPs, twice D's products
    assert flops2 == flops and len(ops2) == 3 + 18 + 9 + 6


@pytest.mark.slow
def test_quick_soak_every_fault_kind_then_bit_identical_to_an_uninterrupted_run(tmp_path):
    """benchmarks/soak.py on a small budget: six faults, one of each kind (SIGKILL at random, inside a
    checkpoint write and inside a metrics append; SIGTERM; a second trainer on the live run; a full disk),
    each followed by --resume."""
    r = soak(faults=len(KINDS), steps=300, every=25, seed=0, root=tmp_path, say=lambda *a: None,
             sets=["eval.every=off"])  # no feature classifier to train in every process
    assert sorted(e["kind"] for e in r["events"]) == sorted(KINDS)
    assert all(e["ok"] for e in r["events"]), [e for e in r["events"] if not e["ok"]]
    assert r["weights_identical"] and r["train_lines_identical"] and r["one_line_per_step"]
    assert r["nothing_lost"] and r["extras_only_at_graceful_stops"]
    assert r["bytes_lost"] == 0 and max(r["redone"]) <= 25 + 25  # at most a checkpoint interval (+ the log lag)


def test_every_number_link_in_the_readme_points_at_an_existing_row():
    """The README's headline numbers link to lines of benchmarks/results/*.jsonl: each line exists and is a row."""
    import re

    readme = (harness.ROOT / "README.md").read_text()
    links = re.findall(r"\(benchmarks/results/(\w+)\.jsonl#L(\d+)\)", readme)
    assert len(links) >= 10  # one per preset
    for name, line in links:
        rows = harness.rows(name)
        assert 1 <= int(line) <= len(rows), f"README links {name}.jsonl line {line}; the file has {len(rows)}"
        assert {"date", "host", "commit"} <= set(rows[int(line) - 1])


def test_stacked_mnist_reads_each_budget_at_the_last_checkpoint_inside_it(tmp_path, monkeypatch):
    from benchmarks import stacked_mnist as sm
    cfg = ganforge.resolve_config("stacked-mnist", overrides={
        "train.steps": 6, "train.batch_size": 8, "model.g_features": 4, "model.d_features": 4, "log.every": 1,
        "log.progress": False, "log.checkpoint_every": "2 steps", "log.keep_checkpoints": 10, "eval.every": "off"})
    run = ganforge.train(cfg, tmp_path / "r")
    lines = [json.loads(t) for t in (run.dir / "metrics.jsonl").read_text().splitlines()]
    for r in lines:  # a clock of 10 s a step, so the budgets below fall between checkpoints
        if r["kind"] == "train":
            r["elapsed_s"] = 10.0 * r["step"]
    (run.dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    monkeypatch.setattr(sm, "N", 300)
    curve = sm.read_curve(run.dir, [35, 45, 60])
    assert [(c["budget"], c["step"]) for c in curve] == [(35, 2), (45, 4), (60, 6)]
    assert all(1 <= c["modes_1000"] <= 300 and c["kl_1000"] > 0 for c in curve)


def test_cifar10_probe_reads_separable_classes_and_the_table_shows_published_rows():
    import torch

    from benchmarks import cifar10

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=gen) * 3
    y = torch.arange(10).repeat(60)
    x = (centres[y] + torch.randn(600, 32, generator=gen)).double()
    probe = cifar10.Probe(x, y)
    assert probe.wd in (1e-4, 1e-3, 1e-2)
    per = probe.per_class(x, y)
    assert len(per) == 10 and min(per) > 0.9
    scrambled = probe.per_class(x, (y + 1) % 10)  # every label wrong: accuracy near 0
    assert max(scrambled) < 0.1
    row = {"preset": "cifar10", "budget": 900, "n": 10, "cpu": "Intel(R) Xeon(R) Processor", "precision": 0.5,
           "recall": 0.4}
    rows = [{**row, "seed": 0, "step": 100, "images_per_s": 800.0, "fid": 40.0, "gan_test": 0.7},
            {**row, "seed": 1, "step": 110, "images_per_s": 820.0, "fid": 44.0, "gan_test": 0.8}]
    text = cifar10.table(rows)
    assert "| cifar10 | 15 | Intel Xeon | 2 | 105 | 810 | 42.0 (40.0-44.0) | 0.500 | 0.400 | 75.0% | 10 |" in text
    assert "R3GAN | 1.96" in text and "DCGAN (StudioGAN) | 48.3" in text


def test_flowers_table_puts_the_floor_first_and_averages_a_recipe_over_distinct_seeds_on_one_cpu():
    from benchmarks import flowers
    from benchmarks.harness import cpu_label

    row = {"recipe": "small", "budget": 3600, "n": 20, "precision": 0.5, "recall": 0.2,
           "cpu": "Intel(R) Xeon(R) Processor"}
    rows = [{**row, "seed": 0, "step": 100, "images_per_s": 200.0, "fid": 60.0},
            {**row, "seed": 1, "step": 120, "images_per_s": 220.0, "fid": 70.0},
            {**row, "seed": 0, "step": 300, "images_per_s": 600.0, "fid": 50.0, "cpu": "AMD EPYC 7B13"},
            {"recipe": "real training photos (floor)", "n": 20, "fid": 30.0, "precision": 0.7, "recall": 0.7}]
    lines = flowers.table(rows).splitlines()
    assert lines[2] == "| real training photos (floor) | - | - | - | - | - | 30.0 | 0.700 | 0.700 | 20 |"
    assert lines[3] == "| small | 60 | AMD EPYC | 1 | 300 | 600 | 50.0 (50.0-50.0) | 0.500 | 0.200 | 20 |"
    assert lines[4] == "| small | 60 | Intel Xeon | 2 | 110 | 210 | 65.0 (60.0-70.0) | 0.500 | 0.200 | 20 |"
    assert cpu_label({"cpu": "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"}) == "Intel Core" and cpu_label({}) == "-"
    assert set(flowers.RECIPES) == {"dcgan", "small"} and flowers.RECIPES["dcgan"] == ("dcgan", [])


def test_text_baselines_write_32_character_lines_and_the_table_keeps_floors_apart():
    import torch

    from benchmarks import text
    from ganforge.data.text import TextData

    corpus = "to be or not to be, that is the question. " * 40
    chain = text.markov(corpus, 3, 20, seed=0)
    assert len(chain) == 20 and all(len(s) == text.LENGTH for s in chain)
    assert all(s[i:i + 3] in corpus for s in chain for i in range(text.LENGTH - 2))  # every 3-gram is the text's
    data = TextData(corpus, corpus[:200], text.LENGTH, "t")
    gru = text.GRU(len(data.alphabet), seed=0, hidden=16)
    losses = [gru.step(data.codes, batch=8, length=16) for _ in range(30)]
    assert losses[-1] < losses[0]
    lines = gru.sample(data.alphabet, 5, 0, torch.ones(len(data.alphabet)))
    assert len(lines) == 5 and all(len(s) == text.LENGTH and set(s) <= set(data.alphabet) for s in lines)
    rows = [{"model": "chars", "budget": 300, "cpu": "AMD EPYC", "step": 10,
             "js_1": .1, "js_2": .2, "js_3": .3, "js_4": .4,
             "in_vocab": .5, "novelty": 1.0},
            {"model": "training text (floor)", "js_1": 0, "js_2": 0, "js_3": .1, "js_4": .2, "in_vocab": .95,
             "novelty": 0.0}]
    table = text.table(rows)
    assert table.index("training text (floor) | - |") < table.index("| chars | 5 | AMD EPYC | 1 | 10 |")
    assert "0.400 (0.400-0.400) | 50.0% | 100.0% |" in table


def test_audio_table_shows_the_share_of_the_real_inception_score_and_the_published_rows():
    from benchmarks import audio

    rows = [{"model": "fsdd", "budget": 1800, "cpu": "AMD EPYC", "step": 900,
             "accuracy": 0.8, "accuracy_per_class": [0.5, 0.9],
             "inception_score": 6.0, "inception_score_real": 8.0, "fid": 12.0, "closer_than_real": 0.0},
            {"model": "FSDD test split (real)", "accuracy": 0.98, "accuracy_per_class": [0.95, 1.0],
             "inception_score": 8.0, "inception_score_real": 8.0, "fid": 0.0, "closer_than_real": 0.0}]
    text = audio.table(rows)
    assert "| fsdd | 30 | AMD EPYC | 1 | 900 | 80.0% | 50% | 6.00 (75%) | 12.00 | 0.0% |" in text
    assert text.index("FSDD test split (real) | - |") < text.index("| fsdd | 30 |")
    assert "| WaveGAN | 4.67 (51%) |" in text  # the 51% of real on SC09
