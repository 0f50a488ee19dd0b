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
