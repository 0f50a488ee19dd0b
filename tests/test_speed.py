"""The fast path trains the same numbers as the plain path; amp/compile flags are validated and resume."""

import pytest
import torch

import ganforge
from ganforge.models import build_discriminator
from ganforge.training.step import cpu_has_native_bf16, rows_independent


def _train_lines(cfg, run_dir):
    ganforge.train(cfg, run_dir)
    return [m for m in ganforge.Run(run_dir).metrics if m["kind"] == "train"]


def _assert_same_losses(a, b, rtol=1e-4, atol=1e-5):
    assert [m["step"] for m in a] == [m["step"] for m in b] and a
    for x, y in zip(a, b):
        for k in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert y[k] == pytest.approx(x[k], rel=rtol, abs=atol), (x["step"], k)


# unconditional and without R1, as the preset was before it took class labels and the penalty (the labels'
# and R1's path: the last case)
DCGAN_ADAM = {"optim.lr_g": 2e-4, "optim.lr_d": 2e-4, "optim.betas": [0.5, 0.999], "conditional": False, "r1": 0.0}


@pytest.mark.parametrize("preset, extra", [
    ("mnist-mlp", {}),                                   # one D forward for real and fake, fused Adam
    ("mnist-mlp-tuned", {}),                             # dropout in D: two forwards; fused Adam; EMA
    # channels_last convolutions and one D forward (D without BatchNorm), then BatchNorm in D (two forwards);
    # with DCGAN's optimiser: at the preset's 2e-3 with betas (0, 0.99) a step is about lr·sign(g), so a
    # float rounding that flips the sign of a near-zero gradient moves the losses past the tolerance
    ("mnist-dcgan", {"train.batch_size": 16, **DCGAN_ADAM}),
    ("mnist-dcgan", {"train.batch_size": 16, **DCGAN_ADAM, "model.d_norm": "batchnorm"}),
    ("mnist-mlp", {"r1": 1.0, "conditional": True}),     # R1 through the joint forward; labels concatenated
])
def test_fast_path_gives_the_plain_paths_losses(preset, extra, tiny_config, tmp_path):
    over = {"train.steps": 6, "log.every": 1, **extra}
    plain = _train_lines(tiny_config(preset, **{**over, "train.fast": False}), tmp_path / "plain")
    fast = _train_lines(tiny_config(preset, **{**over, "train.fast": True}), tmp_path / "fast")
    _assert_same_losses(plain, fast)
    g_plain, g_fast = ganforge.load(tmp_path / "plain").generator, ganforge.load(tmp_path / "fast").generator
    # Where a gradient is near zero, Adam's step is about lr·sign(g), so float rounding may flip the sign of
    # one step of a weight: +lr in one run, -lr in the other, 2·lr apart (an Intel AVX512 host showed 2 of
    # 204,800 weights 1.16 lr apart). So: every weight within two steps' size, and few beyond one step.
    lr = max(plain[0]["lr_g"], plain[0]["lr_d"])
    for (name, p), q in zip(g_plain.state_dict().items(), g_fast.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=2 * lr), name
        beyond_one_step = ~torch.isclose(p.float(), q.float(), rtol=1e-3, atol=lr)
        assert int(beyond_one_step.sum()) <= max(2, p.numel() // 10_000), name


def test_which_discriminators_take_real_and_fake_in_one_forward():
    def ok(preset, **over):
        cfg = ganforge.resolve_config(preset, overrides=over)
        shape = (1, 32, 32) if cfg.model.arch == "dcgan" else (1, 28, 28)
        return rows_independent(cfg, build_discriminator(cfg.model, shape))

    assert ok("mnist-mlp") and ok("mnist-mlp-bn") and ok("mnist-mlp", conditional=True)
    assert ok("mnist-dcgan")                                      # D without BatchNorm
    assert not ok("mnist-dcgan", **{"model.d_norm": "batchnorm"})  # BatchNorm: batch statistics
    assert not ok("mnist-mlp-tuned")                              # dropout: random draws per call
    assert not ok("mnist-mlp", spectral_norm=True)                # a power iteration per call
    assert not ok("mnist-mlp", diffaugment="translation")         # augmentation drawn per call
    assert not ok("mnist-mlp", **{"model.d_input": "sample+stats"})  # minibatch statistics


def test_amp_and_compile_values_are_validated():
    with pytest.raises(ganforge.GanforgeError, match="train.amp"):
        ganforge.resolve_config("mnist-mlp", overrides={"train.amp": "fp16"})
    with pytest.raises(ganforge.GanforgeError, match="train.compile"):
        ganforge.resolve_config("mnist-mlp", overrides={"train.compile": "sometimes"})


def test_amp_bf16_on_cpu_and_resume(tiny_config, tmp_path, capsys):
    """CPU: bf16 autocast where the CPU has native bf16, else a warning and fp32 (the same numbers as amp
    off). Either way a run with amp resumes and continues."""
    base = {"log.every": 1}
    full = _train_lines(tiny_config(**{**base, "train.steps": 4, "train.amp": "bf16"}), tmp_path / "full")
    err = capsys.readouterr().err
    if cpu_has_native_bf16():
        assert all(abs(m["d_loss"]) < 100 for m in full)
    else:
        assert "no native bf16" in err and "training in fp32" in err
        _assert_same_losses(_train_lines(tiny_config(**{**base, "train.steps": 4}), tmp_path / "off"), full,
                            rtol=0, atol=0)
    ganforge.train(tiny_config(**{**base, "train.steps": 2, "train.amp": "bf16"}), tmp_path / "r")
    cfg = tiny_config(**{**base, "train.steps": 4, "train.amp": "bf16"})
    ganforge.train(cfg, tmp_path / "r", resume=True)
    resumed = [m for m in ganforge.Run(tmp_path / "r").metrics if m["kind"] == "train"]
    assert [m["step"] for m in resumed] == [1, 2, 3, 4]
    if not cpu_has_native_bf16():  # fp32 on both sides: resume is exact
        _assert_same_losses(full, resumed, rtol=0, atol=0)


@pytest.mark.slow
def test_compile_trains_and_resumes(tiny_config, tmp_path):
    """torch.compile on a small MLP (CPU inductor): the same losses as eager within float tolerance, and a
    compiled run resumes; switching compile or the fast path on resume is allowed (same arithmetic)."""
    base = {"log.every": 1, "model.g_hidden": [32], "model.d_hidden": [32]}
    eager = _train_lines(tiny_config(**{**base, "train.steps": 3}), tmp_path / "eager")
    compiled = _train_lines(tiny_config(**{**base, "train.steps": 3, "train.compile": True}), tmp_path / "c")
    _assert_same_losses(eager, compiled, rtol=1e-3, atol=1e-4)
    cfg = tiny_config(**{**base, "train.steps": 4, "train.fast": False})
    ganforge.train(cfg, tmp_path / "c", resume=True)
    assert [m["step"] for m in ganforge.Run(tmp_path / "c").metrics if m["kind"] == "train"] == [1, 2, 3, 4]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here; CI has none)")
def test_cuda_amp_bf16_trains(tiny_config, tmp_path):
    lines = _train_lines(tiny_config("mnist-dcgan", **{"device": "cuda", "train.amp": "bf16", "train.steps": 4,
                                                       "train.batch_size": 16, "log.every": 1}), tmp_path / "g")
    assert len(lines) == 4 and all(abs(m["d_loss"]) < 100 for m in lines)
    assert ganforge.load(tmp_path / "g").sample(4).shape == (4, 1, 32, 32)
