import subprocess
import sys

import numpy as np
import pytest

from ganforge.cli import main

TINY = ["--set", "data.limit=256", "--set", "train.batch_size=32", "-q"]


def _run(args, capsys):
    try:
        code = main(args)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_one_line_each(capsys):
    code, out, _ = _run(["presets"], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) >= 2
    assert any(l.startswith("mnist-mlp ") for l in lines) and any(l.startswith("mnist-mlp-bn ") for l in lines)
    assert sum("(default)" in l for l in lines) == 1


def test_train_then_sample_png_and_npy(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, _ = _run(["train", "--preset", "mnist-mlp", "--run-dir", str(run), "--steps", "6",
                         "--seed", "3", *TINY], capsys)
    assert code == 0 and f"run dir {run}" in out
    assert (run / "samples" / "step-0000006.png").is_file()
    code, out, _ = _run(["sample", str(run), "--n", "12", "--out", str(tmp_path / "s.npy"), "--seed", "1"], capsys)
    assert code == 0
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (12, 1, 28, 28) and arr.dtype == np.float32 and arr.min() >= 0 and arr.max() <= 1
    code, _, _ = _run(["sample", str(run), "--n", "9", "--out", str(tmp_path / "s.png")], capsys)
    assert code == 0
    from PIL import Image
    w, h = Image.open(tmp_path / "s.png").size
    assert (w, h) == (3 * 30 + 2, 3 * 30 + 2)   # 3x3 grid of 28 px with 2 px padding


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert _run(["train", "--preset", "mnist-mlp", "--run-dir", str(run), "--steps", "4", *TINY], capsys)[0] == 0
    code, out, _ = _run(["train", "--run-dir", str(run), "--steps", "8", "--resume", "-q"], capsys)
    assert code == 0 and "step 8 " in out
    code, _, err = _run(["train", "--run-dir", str(run), "--resume", "--set", "optim.lr_g=1e-3", "-q"], capsys)
    assert code == 2 and "cannot change 'optim.lr_g'" in err


def _bad_inputs(root):
    """Files the bad-input probes point at: an empty and an all-corrupt image folder, a list-shaped and an
    invalid YAML file, a file where a run dir should be, a truncated checkpoint."""
    (root / "empty").mkdir()
    (root / "corrupt" / "a").mkdir(parents=True)
    for i in range(3):
        (root / "corrupt" / "a" / f"{i}.png").write_bytes(b"not a png")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "invalid.yaml").write_text("loss: [unclosed\n")
    (root / "afile").write_text("keep me")
    (root / "cut.pt").write_bytes(b"PK\x03\x04 truncated")


# Every bad input: one line naming the problem, exit 2, no traceback, nothing written.
@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--set", "optim.lr_gg=1"], "did you mean 'optim.lr_g'"),
    (["train", "--set", "train.batch_size=-4"], "'train.batch_size' must be >= 1"),
    (["train", "--set", "model.z_dim=0"], "'model.z_dim' must be >= 1"),
    (["train", "--set", "model.z_dim=ten"], "'model.z_dim' must be an integer"),
    (["train", "--set", "train.max_seconds=nan"], "'train.max_seconds' must be a finite number"),
    (["train", "--set", "train.max_seconds=-inf"], "'train.max_seconds' must be a finite number"),
    (["train", "--set", "optim.lr_g=nan"], "'optim.lr_g' must be a finite number"),
    (["train", "--set", "optim.lr_d=inf"], "'optim.lr_d' must be a finite number"),
    (["train", "--set", "optim.betas=0.5,nan"], "'optim.betas' must be a finite number"),
    (["train", "--max-seconds", "nan"], "'train.max_seconds' must be a finite number"),
    (["train", "--steps", "5", "--epochs", "2"], "not allowed with argument"),
    (["train", "--data", "/no/such/dir"], "nor an existing folder"),
    (["train", "--data", "{tmp}/empty"], "holds no image files"),
    (["train", "--data", "{tmp}/corrupt"], "has no usable image"),
    (["train", "--config", "/no/such.yaml"], "config file not found"),
    (["train", "--config", "{tmp}/list.yaml"], "must be a mapping"),
    (["train", "--config", "{tmp}/invalid.yaml"], "is not valid YAML"),
    (["train", "--device", "cuda"], "no CUDA GPU"),
    (["train", "--run-dir", "{tmp}/afile"], "is a file"),
    (["train", "--resume"], "--resume needs --run-dir"),
    (["sample", "/no/such/run", "--out", "x.png"], "no such run dir or checkpoint"),
    (["sample", ".", "--out", "x.jpg"], "must end in .png, .npy, .txt (text runs) or .wav (audio runs)"),
    (["sample", "{tmp}/cut.pt", "--out", "x.png"], "truncated or corrupt"),
    (["sample", "{tmp}/cut.pt", "--n", "0", "--out", "x.png"], "--n must be"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    _bad_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    if "--device" in args and __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert message in lines[-1] and lines[-1].startswith("ganforge: error: ")
    # one line; an all-corrupt folder first names each file it skipped (one warning each)
    assert len(lines) == 1 or ("corrupt" in args[-1] and all(l.startswith("ganforge: warning: skipped")
                                                             for l in lines[:-1]))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written (no runs/, no x.png)


def test_inf_budget_means_no_limit():
    from ganforge.config import resolve_config
    assert resolve_config("mnist-mlp", overrides={"train.max_seconds": "inf"}).train.max_seconds is None


def test_a_command_line_budget_replaces_the_presets_budget_of_any_unit():
    import argparse

    from ganforge.cli import _train_overrides
    from ganforge.config import resolve_config

    def cfg(**flags):
        base = dict(seed=None, epochs=None, steps=None, max_seconds=None, data=None, device=None, quiet=False,
                    sets=[])
        args = argparse.Namespace(**{**base, **flags})
        return resolve_config(None, overrides=_train_overrides(args)).train

    assert cfg().max_seconds == 120 and cfg().epochs is None  # the default preset's own: seconds
    t = cfg(epochs=3)
    assert (t.epochs, t.steps, t.max_seconds) == (3, None, None)
    t = cfg(steps=7)
    assert (t.epochs, t.steps, t.max_seconds) == (None, 7, None)
    t = cfg(max_seconds=600.0)
    assert (t.epochs, t.steps, t.max_seconds) == (None, None, 600.0)


def test_bad_run_dirs(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("keep me")
    code, _, err = _run(["train", "--run-dir", str(f), "--steps", "1", *TINY], capsys)
    assert code == 2 and "is a file" in err and f.read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["sample", str(empty), "--out", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "no checkpoint in run dir" in err and not (tmp_path / "x.png").exists()


def test_a_real_process_exits_2_without_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ganforge", "train", "--set", "los=minimax"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.strip() == "ganforge: error: unknown config key 'los' in --set (did you mean 'loss'?)"
    assert not (tmp_path / "runs").exists()
