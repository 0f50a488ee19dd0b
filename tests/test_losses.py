import math

import pytest
import torch

from ganforge.losses import LOSSES, d_bce, g_minimax, g_nonsaturating


def _sig(v):
    return 1 / (1 + math.exp(-v))


REAL = [0.0, 2.0, -0.5]
FAKE = [-1.0, 1.0, 3.0]


def test_d_loss_is_the_negative_value_function():
    # D maximises E[log D(x)] + E[log(1 - D(G(z)))], so it minimises the negative of that.
    expected = -sum(math.log(_sig(v)) for v in REAL) / 3 - sum(math.log(1 - _sig(v)) for v in FAKE) / 3
    got = d_bce(torch.tensor(REAL), torch.tensor(FAKE)).item()
    assert got == pytest.approx(expected, rel=1e-6)
    assert d_bce(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_generator_losses():
    fake = torch.tensor(FAKE)
    assert g_minimax(fake).item() == pytest.approx(sum(math.log(1 - _sig(v)) for v in FAKE) / 3, rel=1e-6)
    assert g_nonsaturating(fake).item() == pytest.approx(-sum(math.log(_sig(v)) for v in FAKE) / 3, rel=1e-6)
    assert g_nonsaturating(torch.zeros(1)).item() == pytest.approx(math.log(2), rel=1e-6)


def test_same_as_sigmoid_plus_bceloss_but_stable():
    torch.manual_seed(0)
    real, fake = torch.randn(64) * 3, torch.randn(64) * 3
    bce = torch.nn.BCELoss()
    classic = bce(torch.sigmoid(real), torch.ones(64)) + bce(torch.sigmoid(fake), torch.zeros(64))
    assert d_bce(real, fake).item() == pytest.approx(classic.item(), rel=1e-5)
    assert g_nonsaturating(fake).item() == pytest.approx(bce(torch.sigmoid(fake), torch.ones(64)).item(), rel=1e-5)
    extreme = torch.tensor([-200.0, 200.0])
    for v in (d_bce(extreme, extreme), g_minimax(extreme), g_nonsaturating(extreme)):
        assert torch.isfinite(v)
    assert g_nonsaturating(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_sign_conventions_gradients():
    # Minimising the G losses must push D(G(z)) up: d loss / d logit < 0 for both.
    for g in (g_minimax, g_nonsaturating):
        logit = torch.tensor([0.5], requires_grad=True)
        g(logit).backward()
        assert logit.grad.item() < 0
    # The saturating loss has a vanishing gradient where D rejects the fakes confidently.
    logit = torch.tensor([-8.0], requires_grad=True)
    g_minimax(logit).backward()
    sat = abs(logit.grad.item())
    logit = torch.tensor([-8.0], requires_grad=True)
    g_nonsaturating(logit).backward()
    assert sat < 1e-3 < abs(logit.grad.item())


def test_registry():
    assert LOSSES["minimax"].d is LOSSES["nonsaturating"].d is d_bce
    assert LOSSES["minimax"].g is g_minimax and LOSSES["nonsaturating"].g is g_nonsaturating


def test_r1_penalty_is_the_squared_input_gradient():
    from ganforge.losses import r1_penalty
    w = torch.tensor([[3.0, -4.0]])          # D(x) = x·w: gradient w everywhere, ‖w‖² = 25
    x = torch.randn(5, 2, requires_grad=True)
    assert r1_penalty(x, (x @ w.T).squeeze(1)).item() == pytest.approx(25.0)
    x = torch.randn(5, 2, requires_grad=True)   # D(x) = ‖x‖²: gradient 2x, penalty 4·mean‖x‖²
    assert r1_penalty(x, x.pow(2).sum(1)).item() == pytest.approx(4 * x.pow(2).sum(1).mean().item(), rel=1e-5)


def test_lsgan_wgan_hinge_against_hand_values():
    from ganforge.losses import d_hinge, d_lsgan, d_wasserstein, g_lsgan, g_wasserstein
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)      # REAL = [0, 2, -0.5], FAKE = [-1, 1, 3]
    # LSGAN, a/b/c = 0/1/1: ½·mean((r-1)²) + ½·mean(f²); ½·mean((f-1)²)
    assert d_lsgan(real, fake).item() == pytest.approx(0.5 * (1 + 1 + 2.25) / 3 + 0.5 * (1 + 1 + 9) / 3)
    assert g_lsgan(fake).item() == pytest.approx(0.5 * (4 + 0 + 4) / 3)
    assert d_lsgan(real, fake, a=-1, b=1).item() == pytest.approx(0.5 * 4.25 / 3 + 0.5 * (0 + 4 + 16) / 3)
    # WGAN: mean(f) - mean(r); G: -mean(f)
    assert d_wasserstein(real, fake).item() == pytest.approx(1.0 - 0.5)
    assert g_wasserstein(fake).item() == pytest.approx(-1.0)
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f))
    assert d_hinge(real, fake).item() == pytest.approx((1 + 0 + 1.5) / 3 + (0 + 2 + 4) / 3)


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_d_loss_falls_as_d_separates_and_every_g_loss_falls_as_fakes_look_real(name):
    loss = LOSSES[name]
    # At a generic point (0.5, not LSGAN's target 0 where its fake term is flat):
    real, fake = torch.full((4,), 0.5, requires_grad=True), torch.full((4,), 0.5, requires_grad=True)
    loss.d(real, fake).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()   # D minimises: raise real scores, lower fake ones
    fake = torch.full((4,), 0.5, requires_grad=True)
    (loss.g(fake, torch.full((4,), 0.5)) if loss.paired else loss.g(fake)).backward()
    assert (fake.grad < 0).all()                              # G minimises: raise D's score of its fakes


def test_rpgan_pairs_each_real_with_its_fake():
    from ganforge.losses import d_rpgan, g_rpgan
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)      # differences r - f: 1, 1, -3.5
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    assert d_rpgan(real, fake).item() == pytest.approx((sp(-1) + sp(-1) + sp(3.5)) / 3, rel=1e-6)
    assert g_rpgan(fake, real).item() == pytest.approx((sp(1) + sp(1) + sp(-3.5)) / 3, rel=1e-6)
    # pairing, not all pairs: shuffling one side changes the loss; equal logits give log 2
    assert d_rpgan(real, fake.flip(0)).item() != pytest.approx(d_rpgan(real, fake).item())
    assert d_rpgan(torch.ones(3), torch.ones(3)).item() == pytest.approx(math.log(2))
    assert LOSSES["rpgan"].paired and not LOSSES["nonsaturating"].paired


def test_gradient_penalty_zero_for_a_unit_lipschitz_linear_critic_positive_for_steeper():
    from ganforge.losses import gradient_penalty
    torch.manual_seed(0)
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    w = torch.tensor([0.6, 0.0, 0.8])                         # ‖w‖ = 1
    assert gradient_penalty(lambda x: x @ w, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(lambda x: x @ (3 * w), real, fake).item() == pytest.approx(4.0)   # (3 - 1)²


def test_loss_recommendations_sit_below_the_preset_and_the_user():
    from ganforge.config import resolve_config
    cfg = resolve_config("ring-8", overrides={"loss": "wgan-gp"})
    assert cfg.d_steps == 5                                   # recommended; the preset says nothing
    assert cfg.optim.lr_g == pytest.approx(5e-4)              # the preset's own value wins (wgan-gp: 1e-4)
    assert resolve_config("ring-8", overrides={"loss": "wgan-gp", "d_steps": 2}).d_steps == 2
    assert resolve_config("ring-8").d_steps == 1


@pytest.mark.parametrize("name", ["lsgan", "wgan", "wgan-gp", "hinge", "rpgan"])
def test_each_loss_trains_through_the_one_loop(name, tmp_path):
    import ganforge
    from ganforge.config import resolve_config
    cfg = resolve_config("ring-8", overrides={"loss": name, "train.steps": 5, "log.every": 1,
                                               "log.progress": False, "eval.n": 200})
    run = ganforge.train(cfg, tmp_path / name)
    rows = [m for m in run.metrics if m["kind"] == "train"]
    assert len(rows) == 5 and all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in rows)
    if name == "wgan":
        D = torch.load(run.dir / "checkpoints" / "step-0000005.pt", weights_only=True)["D"]
        assert max(v.abs().max().item() for v in D.values()) <= cfg.loss_params.clip + 1e-7
