"""Projection into z and inpainting: the search recovers a known z's image, G stays frozen, known pixels come
back as given, masks match hand-built ones, same seed same output, and the commands' bad inputs."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.cli import main
from ganforge.config import resolve_config
from ganforge.errors import GanforgeError
from ganforge.inverse import contextual_weights, lr_ramp, noise_scale, poisson_blend
from ganforge.repair import parse_mask

QUICK = {"train.batch_size": 16, "train.epochs": None, "train.steps": 2, "log.progress": False, "eval.every": "off",
         "data.limit": 64, "train.max_seconds": None}
SMALL = {"model.g_features": 8, "model.d_features": 8}
FAST = {"steps": 30, "restarts": 2, "pool": 8}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run of each image preset's kind of generator (MLP, MLP with BatchNorm, DCGAN at 28 px
    conditional, at 32 px, at 64 px RGB) and a toy run."""
    from ganforge.data.examples import write_example_folder

    root = tmp_path_factory.mktemp("inverse-runs")
    photos = write_example_folder(root / "photos")
    kinds = {"mlp": ("mnist-mlp", {}), "conv-conditional": ("mnist-conv", {**SMALL, "conditional": "true"}),
             "mlp-bn": ("mnist-mlp-bn", {}), "dcgan-32": ("mnist-dcgan", {**SMALL, "conditional": "false"}),
             "dcgan-rgb": ("dcgan", {**SMALL, "data.name": str(photos), "data.limit": None}),
             "toy": ("ring-8", {"data.limit": None})}
    return {name: ganforge.train(resolve_config(preset, overrides={**QUICK, **sets}), root / name).dir
            for name, (preset, sets) in kinds.items()}


def test_schedule_and_weights_by_hand():
    assert lr_ramp(0.0) == 0.0 and lr_ramp(0.025) == pytest.approx(0.5) and lr_ramp(0.5) == 1.0
    assert lr_ramp(0.875) == pytest.approx(0.5) and lr_ramp(1.0) == pytest.approx(0.0)
    assert noise_scale(0.0, 0.3) == 0.3 and noise_scale(0.375, 0.3) == pytest.approx(0.075)
    assert noise_scale(0.75, 0.3) == 0.0 and noise_scale(0.9, 0.3) == 0.0
    m = torch.ones(1, 1, 7, 7)
    m[0, 0, 3, 3] = 0  # one missing pixel in the middle
    w = contextual_weights(m, window=3)
    assert w[0, 0, 3, 3] == 0  # missing pixels carry no weight
    assert w[0, 0, 2, 3] == pytest.approx(1 / 9) and w[0, 0, 2, 2] == pytest.approx(1 / 9)
    assert w[0, 0, 0, 0] == 0 and w[0, 0, 1, 3] == 0  # outside the hole's 3x3 neighbourhood


def test_poisson_blend_fills_a_hole_from_its_border_and_keeps_known_pixels():
    known = torch.full((1, 1, 9, 9), 0.7)
    mask = torch.ones(1, 1, 9, 9)
    mask[..., 3:6, 3:6] = 0
    known[..., 3:6, 3:6] = 0.0  # garbage in the hole
    flat = torch.full((1, 1, 9, 9), 0.2)  # G(z) flat: no gradients to add, so the hole takes the border's 0.7
    out = poisson_blend(flat, known, mask)
    assert torch.allclose(out[..., 3:6, 3:6], torch.full((1, 1, 3, 3), 0.7), atol=1e-4)
    assert torch.equal(out * mask, known * mask)
    ramp = torch.linspace(0, 0.8, 9).view(1, 1, 1, 9).expand(1, 1, 9, 9).contiguous()
    out = poisson_blend(ramp, ramp + 0.1, mask)  # G's gradients kept, shifted to meet the border
    assert torch.allclose(out[..., 3:6, 3:6], ramp[..., 3:6, 3:6] + 0.1, atol=1e-4)
    assert torch.equal(poisson_blend(flat, known, torch.ones_like(mask)), known)


def test_each_shorthand_mask_matches_a_hand_built_one(tmp_path):
    shape, n = (1, 28, 28), 3
    top = torch.ones(n, 1, 28, 28)
    top[:, :, :14] = 0
    assert torch.equal(parse_mask("top-half", shape, n), top)
    assert torch.equal(parse_mask("bottom-half", shape, n), 1 - top)
    left = torch.ones(n, 1, 28, 28)
    left[..., :14] = 0
    assert torch.equal(parse_mask("left-half", shape, n), left)
    assert torch.equal(parse_mask("right-half", shape, n), 1 - left)
    centre = torch.ones(n, 1, 28, 28)
    centre[..., 7:21, 7:21] = 0
    assert torch.equal(parse_mask("center:14", shape, n), centre)
    r = parse_mask("random:0.5", shape, n, seed=1)
    assert torch.equal(r, parse_mask("random:0.5", shape, n, seed=1)) and not torch.equal(r, parse_mask("random:0.5", shape, n, seed=2))
    assert abs(float(1 - r.mean()) - 0.5) < 0.05 and set(r.unique().tolist()) == {0.0, 1.0}
    np.save(tmp_path / "m.npy", centre[:1].numpy())
    assert torch.equal(parse_mask(str(tmp_path / "m.npy"), shape, n), centre)
    Image.fromarray((centre[0, 0].numpy() * 255).astype(np.uint8)).resize((56, 56), Image.NEAREST).save(tmp_path / "m.png")
    assert torch.equal(parse_mask(str(tmp_path / "m.png"), shape, n), centre)  # white = known, resized
    for bad in ("center:40", "random:2", "middle", str(tmp_path / "nope.npy")):
        with pytest.raises(GanforgeError):
            parse_mask(bad, shape, n)
    np.save(tmp_path / "wrong.npy", np.ones((2, 1, 28, 28), np.float32))
    with pytest.raises(GanforgeError, match="shape"):
        parse_mask(str(tmp_path / "wrong.npy"), shape, n)


def test_projecting_a_known_z_recovers_its_image_and_leaves_g_untouched(runs):
    gan = ganforge.load(runs["mlp"])
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    flags = [p.requires_grad for p in gan.generator.parameters()]
    target = gan.sample(6, seed=11)
    others = gan.sample(6, seed=12)
    p = gan.project(target, steps=150, restarts=2, pool=16, seed=0)
    mse = float(((p.images - target) ** 2).mean())
    assert mse < 0.1 * float(((others - target) ** 2).mean())  # far closer than another sample of G
    assert p.images.shape == target.shape and p.z.shape == (6, gan.z_dim) and p.y is None
    after = gan.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in gan.generator.parameters()] == flags and all(
        p.grad is None for p in gan.generator.parameters())  # no gradient reached G's weights
    assert not gan.generator.training
    again = gan.project(target, steps=150, restarts=2, pool=16, seed=0)
    assert torch.equal(again.z, p.z) and torch.equal(again.images, p.images)  # the same seed, the same output


def test_conditional_projection_finds_classes_and_batchnorm_buffers_stay(runs):
    gan = ganforge.load(runs["conv-conditional"])
    y = torch.tensor([3, 7, 1])
    target = gan.sample(3, seed=5, labels=y)
    gan.generator.train()  # even a G left in train mode is searched in eval mode, and left as it was
    flags = [p.requires_grad for p in gan.generator.parameters()]
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    p = gan.project(target, classes="search", **FAST)
    assert p.y is not None and p.classes_by == "search" and p.y.shape == (3,)
    given = gan.project(target, labels=y, **FAST)
    assert torch.equal(given.y, y) and given.classes_by == "given"
    assert all(torch.equal(before[k], v) for k, v in gan.generator.state_dict().items())  # BN running stats too
    assert gan.generator.training and [p.requires_grad for p in gan.generator.parameters()] == flags


@pytest.mark.parametrize("kind", ["mlp", "mlp-bn", "conv-conditional", "dcgan-32", "dcgan-rgb"])
def test_inpainting_keeps_known_pixels_on_every_image_model(kind, runs):
    gan = ganforge.load(runs[kind])
    x = gan.sample(2, seed=3, labels=0 if gan.n_classes else None)
    mask = parse_mask("center:8", gan.data_shape, 2)
    before = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    r = gan.inpaint(x, mask, **FAST)
    assert all(torch.equal(before[k], v) for k, v in gan.generator.state_dict().items())  # weights, BN buffers
    assert r.filled.shape == x.shape == r.generated.shape
    assert torch.equal(r.filled * mask, x * mask)
    assert float(r.filled.min()) >= 0 and float(r.filled.max()) <= 1
    same = gan.inpaint(x, torch.ones_like(mask), **FAST)
    assert torch.equal(same.filled, x)  # nothing missing: the input comes back


def test_inpainting_with_realism_and_feature_distances_runs(runs):
    gan = ganforge.load(runs["conv-conditional"])
    x = gan.sample(2, seed=3, labels=1)
    r = gan.inpaint(x, parse_mask("top-half", gan.data_shape, 2), realism=0.01, features="discriminator", **FAST)
    assert torch.equal(r.filled[..., 14:, :], x[..., 14:, :])


def test_project_and_inpaint_commands_write_their_folders(runs, tmp_path, capsys):
    gan = ganforge.load(runs["mlp"])
    x = gan.sample(3, seed=1)
    np.save(tmp_path / "x.npy", x.numpy())
    args = ["--steps", "20", "--restarts", "2", "--pool", "8", "-q"]
    assert main(["project", str(runs["mlp"]), str(tmp_path / "x.npy"), "--out", str(tmp_path / "p"), *args]) == 0
    assert sorted(f.name for f in (tmp_path / "p").iterdir()) == ["grid.png", "latents.npy", "projected.npy", "result.json"]
    assert np.load(tmp_path / "p" / "projected.npy").shape == (3, 1, 28, 28)
    record = json.loads((tmp_path / "p" / "result.json").read_text())
    assert len(record["pixel_mse"]) == 3 and record["steps"] == 20
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):  # PNGs of another size: resized, with a note
        Image.fromarray((x[i, 0].numpy() * 255).astype(np.uint8)).resize((56, 56)).save(folder / f"d{i}.png")
    assert main(["inpaint", str(runs["mlp"]), str(folder), "--mask", "left-half", "--out", str(tmp_path / "i"), *args]) == 0
    out = capsys.readouterr().out
    assert "resized" in out and "50% of the pixels were missing" in out
    assert sorted(f.name for f in (tmp_path / "i" / "filled").iterdir()) == ["d0.png", "d1.png"]
    assert (tmp_path / "i" / "grid.png").is_file() and np.load(tmp_path / "i" / "mask.npy").shape == (2, 1, 28, 28)
    assert main(["project", str(runs["dcgan-32"]), str(folder), "--out", str(tmp_path / "p32"), *args]) == 0
    assert "resized to the generator's 32x32" in capsys.readouterr().out  # 56 px PNGs for a 32 px run
    assert len(list((tmp_path / "p32" / "projected").iterdir())) == 2
    walk = tmp_path / "walk.png"
    assert main(["interpolate", str(runs["mlp"]), "--from", str(folder / "d0.png"), "--to", str(folder / "d1.png"),
                 "--steps", "5", "--out", str(walk)]) == 0
    assert Image.open(walk).size[0] > 5 * 28


def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(runs, tmp_path, capsys):
    gan = ganforge.load(runs["mlp"])
    np.save(tmp_path / "x.npy", gan.sample(2, seed=1).numpy())
    np.save(tmp_path / "rgb4.npy", np.zeros((2, 2, 28, 28), np.float32))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    x = str(tmp_path / "x.npy")
    cases = [
        (["project", str(runs["toy"]), x, "--out", str(tmp_path / "o")], "needs an image model"),
        (["project", str(runs["mlp"]), str(tmp_path / "rgb4.npy"), "--out", str(tmp_path / "o")], "C 1 or 3"),
        (["project", str(runs["mlp"]), str(tmp_path / "broken.png"), "--out", str(tmp_path / "o")], "cannot read image"),
        (["project", str(runs["mlp"]), x, "--out", str(taken)], "not an empty folder"),
        (["project", str(runs["mlp"]), x, "--out", str(tmp_path / "o"), "--steps", "0"], "--steps must be >= 1"),
        (["inpaint", str(runs["mlp"]), x, "--mask", "center:99", "--out", str(tmp_path / "o")], "center:99"),
        (["inpaint", str(runs["mlp"]), x, "--mask", "blob", "--out", str(tmp_path / "o")], "shorthand"),
        (["interpolate", str(runs["mlp"]), "--from", x, "--out", str(tmp_path / "w.png")], "--from and --to"),
    ]
    for argv, says in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "o").exists() and (taken / "keep.txt").read_text() == "mine"
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".*partial*"))


def test_an_all_known_mask_says_so_and_returns_the_input(runs, tmp_path, capsys):
    gan = ganforge.load(runs["mlp"])
    x = gan.sample(2, seed=1)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "m.npy", np.ones((1, 1, 28, 28), np.float32))
    assert main(["inpaint", str(runs["mlp"]), str(tmp_path / "x.npy"), "--mask", str(tmp_path / "m.npy"),
                 "--out", str(tmp_path / "o"), "--steps", "5", "--pool", "4", "-q"]) == 0
    assert "no missing pixel" in capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "o" / "filled.npy"), x.numpy())
    assert math.isfinite(json.loads((tmp_path / "o" / "result.json").read_text())["pixel_mse_mean"])
