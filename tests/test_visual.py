"""Seeing a run: TensorBoard, curves, animation, latent walks, the HTML report (in a real browser), Run."""

import math
import os
import shutil
import sys

import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.models import interpolate_latents
from ganforge.report import smooth

# ---------------------------------------------------------------- pure functions


def test_slerp_and_lerp_paths():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    for spherical in (True, False):
        p = interpolate_latents(z0, z1, 7, spherical)
        assert p.shape == (4, 7, 16)
        assert torch.allclose(p[:, 0], z0, atol=1e-6) and torch.allclose(p[:, -1], z1, atol=1e-6)
    assert torch.allclose(interpolate_latents(z0, z1, 3, False)[:, 1], (z0 + z1) / 2)
    # Two orthogonal unit vectors: slerp stays on the unit circle, at 45 degrees in the middle.
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mid = interpolate_latents(a, b, 3, True)[0, 1]
    assert torch.allclose(mid, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]), atol=1e-6)
    # Gaussian ends of equal norm: every slerp point keeps that norm; lerp's midpoint shrinks (~1/sqrt 2).
    z1n = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)
    norms = interpolate_latents(z0, z1n, 9, True).norm(dim=2)
    assert torch.allclose(norms, z0.norm(dim=1, keepdim=True).expand(4, 9), rtol=1e-5)
    assert (interpolate_latents(z0, z1n, 9, False).norm(dim=2)[:, 4] < 0.9 * z0.norm(dim=1)).all()
    # Parallel ends fall back to lerp instead of dividing by sin(0).
    same = interpolate_latents(a, 2 * a, 3, True)
    assert torch.isfinite(same).all() and torch.allclose(same[0, 1], torch.tensor([1.5, 0.0]))


def test_smooth_is_a_debiased_moving_average():
    assert smooth([2.0] * 50) == pytest.approx([2.0] * 50)
    # weight 0.5 by hand: last = .5*0 + .5*1 = .5 / (1 - .5) = 1; then .5*.5 + .5*3 = 1.75 / (1 - .25) = 2.333
    assert smooth([1.0, 3.0], weight=0.5) == pytest.approx([1.0, 7 / 3])
    assert smooth([]) == []


# ---------------------------------------------------------------- one image run and one toy run

@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from tests.conftest import TINY

    d = tmp_path_factory.mktemp("vis") / "img"
    cfg = ganforge.resolve_config("mnist-mlp", overrides={**TINY, "train.steps": 24, "eval.every": "8 steps",
                                                          "eval.n_train": 200, "log.sample_every": "8 steps",
                                                          "log.checkpoint_every": "8 steps", "log.every": 2,
                                                          "log.tensorboard": True})
    ganforge.train(cfg, d)
    return d


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("vis") / "toy"
    cfg = ganforge.resolve_config("ring-8", overrides={"train.steps": 60, "log.every": 10, "log.progress": False,
                                                       "log.sample_every": "20 steps", "eval.n": 2000,
                                                       "log.checkpoint_every": "20 steps"})
    ganforge.train(cfg, d)
    return d


def _cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_opens_from_disk_with_metrics_and_dataframe(image_run):
    run = ganforge.Run(image_run)
    assert run.config.preset == "mnist-mlp" and run.step == 24
    kinds = {m["kind"] for m in run.metrics}
    assert {"train", "eval"} <= kinds
    train = [m for m in run.metrics if m["kind"] == "train"]
    assert len(train) == 12 and train[-1]["lr_g"] == pytest.approx(3e-4)
    df = run.metrics_df
    assert len(df) == len(run.metrics) and {"step", "d_loss", "fid", "lr_d"} <= set(df.columns)
    assert df[df.kind == "eval"]["fid"].notna().all()
    assert [p.name for p in run.grids] == ["step-0000008.png", "step-0000016.png", "step-0000024.png"]
    with pytest.raises(ganforge.GanforgeError, match="not a ganforge run dir"):
        ganforge.Run(image_run / "samples")


def test_loaded_gan_carries_the_grid_noise(image_run):
    from ganforge.checkpoint import load_checkpoint

    gan = ganforge.load(image_run / "checkpoints" / "best.pt")
    z = load_checkpoint(image_run / "checkpoints" / "best.pt")["fixed_z"]
    assert gan.fixed_z.shape == (gan.config.log.n_samples, gan.z_dim) and torch.equal(gan.fixed_z, z)


def test_tensorboard_mirrors_metrics_grid_and_config(image_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(image_run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/img_per_s", "train/lr_g",
            "eval/fid"} <= set(tags["scalars"])
    lines = [m for m in ganforge.Run(image_run).metrics if m["kind"] == "train"]
    got = [(e.step, e.value) for e in acc.Scalars("train/g_loss")]
    assert got == [(m["step"], pytest.approx(m["g_loss"], rel=1e-6)) for m in lines]
    assert [e.step for e in acc.Images("samples")] == [8, 16, 24]
    assert "config/text_summary" in tags["tensors"]


def test_tensorboard_missing_is_a_note_and_the_run_goes_on(tmp_path, tiny_config, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    run = ganforge.train(tiny_config(**{"train.steps": 2, "log.tensorboard": True}), tmp_path / "r")
    assert run.step == 2 and not (tmp_path / "r" / "tensorboard").exists()
    assert "tensorboard package is not installed" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["image_run", "toy_run"])
def test_plot_animate_interpolate(which, request, tmp_path, capsys):
    run = request.getfixturevalue(which)
    assert _cli(["plot", run], capsys)[0] == 0
    with Image.open(run / "curves.png") as im:
        assert im.width >= 800 and im.height >= 300
    code, out, _ = _cli(["animate", run], capsys)
    assert code == 0
    with Image.open(run / "progress.gif") as im:
        assert im.n_frames == len(list((run / "samples").glob("step-*.png"))) == 3
    code, out, _ = _cli(["interpolate", run, "--steps", 5, "--rows", 3, "--seed", 1, "--out", tmp_path / "w.png"],
                        capsys)
    assert code == 0 and ("slerp" in out)
    with Image.open(tmp_path / "w.png") as im:
        if which == "image_run":  # 3 rows x 5 columns of 28 px with 2 px padding
            assert im.size == (5 * 30 + 2, 3 * 30 + 2)
    code, out, _ = _cli(["interpolate", run, "--steps", 4, "--rows", 2, "--lerp", "--out", tmp_path / "w.gif"], capsys)
    assert code == 0 and "lerp" in out
    with Image.open(tmp_path / "w.gif") as im:
        assert im.n_frames == 4 + 2  # there and back: t0 t1 t2 t3 t2 t1


def test_interpolate_api_walks_between_the_ends(image_run):
    gan = ganforge.load(image_run)
    x = gan.interpolate(rows=2, steps=4, seed=3)
    assert x.shape == (2, 4, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    ends = gan.sample(4, seed=3)  # the same 4 noise vectors: 2 starts, then 2 ends
    assert torch.allclose(x[:, 0], ends[:2], atol=1e-5) and torch.allclose(x[:, -1], ends[2:], atol=1e-5)
    assert not torch.allclose(x[:, 1], x[:, 0], atol=1e-3)  # the walk moves


@pytest.mark.parametrize("args, message", [
    (["plot", "{tmp}"], "not a ganforge run dir"),
    (["plot", "{tmp}/nope"], "no such run dir"),
    (["animate", "{run}", "--out", "{tmp}/x.avi"], "--out must end in .gif or .mp4"),
    (["interpolate", "{run}", "--out", "{tmp}/x.jpg"], "--out must end in .png or .gif"),
    (["interpolate", "{run}", "--steps", "1", "--out", "{tmp}/x.png"], "--steps must be >= 2"),
    (["interpolate", "{run}", "--class", "3", "--out", "{tmp}/x.png"], "conditional runs"),
    (["report", "{tmp}"], "not a ganforge run dir"),
])
def test_bad_input_exits_2_with_one_line(args, message, image_run, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, run=image_run) for a in args]
    code, _, err = _cli(args, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_animate_without_grids_is_bad_input(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("")
    from ganforge.config import resolve_config, save_yaml

    save_yaml(resolve_config("mnist-mlp"), tmp_path / "config.yaml")
    code, _, err = _cli(["animate", tmp_path], capsys)
    assert code == 2 and "no sample grids" in err


# ---------------------------------------------------------------- the report, in a real browser

def _chrome(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    why = None
    if not (chromium and driver):
        why = "headless Chromium is missing (Debian packages chromium and chromium-driver; `make test` installs them)"
    else:
        try:
            import selenium  # noqa: F401
        except ImportError:
            why = "selenium is not installed (pip install -e '.[test]')"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
              "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'chrome-profile'}", "--window-size=1280,1600"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def _check_in_browser(report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chrome(tmp_path)
    try:
        browser.set_page_load_timeout(120)
        browser.get(report.as_uri())
        # get() can hand back control while a large data-URI page is still parsing (seen once under CI load):
        # wait for the document and every image to finish, then assert on them.
        WebDriverWait(browser, 120, poll_frequency=0.2).until(lambda b: b.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        table = browser.find_element(By.ID, "metrics").text
        browser.save_screenshot(str(report.parent / "report.png"))
    finally:
        browser.quit()
    assert severe == []
    assert len(images) >= 5 and all(done and width > 0 for _, done, width in images), images
    return table


@pytest.mark.slow
@pytest.mark.parametrize("which", ["image_run", "toy_run"])
def test_report_renders_in_headless_chromium(which, request, tmp_path, capsys):
    run = request.getfixturevalue(which)
    code, out, _ = _cli(["report", run], capsys)
    assert code == 0
    page = (run / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page  # self-contained, static
    table = _check_in_browser(run / "report.html", tmp_path)
    evals = [m for m in ganforge.Run(run).metrics if m["kind"] == "eval"]
    assert evals
    if which == "image_run":
        assert f"{evals[-1]['fid']:.4g}" in table and "real vs real (floor" in table
        assert f"{evals[-1]['modes_covered']}/10" in table
    else:
        assert f"{100 * evals[-1]['hq_fraction']:.1f}%" in table and "real vs real (floor" in table
    with Image.open(run / "report.png") as im:
        assert im.width > 600 and im.height > 600
