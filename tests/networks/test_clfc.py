"""The CLFC network's paper-specific parts against hand computations on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from tumorseg.networks.clfc import (
    CLFCModule,
    CLFCNet,
    SimSiamHead,
    negative_cosine,
    normal_at,
)
from tumorseg.networks.normal_appearance import NormalAppearanceModel

WIDTHS = (4, 8, 8, 16)


def _module_with_weights() -> CLFCModule:
    """C = 2, hidden 1: zeta = 1*t0 + 2*t1, g = r0 - r1, psi = 3 * u - 1."""
    module = CLFCModule(2, reduction=2)
    with torch.no_grad():
        module.zeta.weight.copy_(torch.tensor([[1.0, 2.0]]).view(1, 2, 1, 1))
        module.zeta.bias.zero_()
        module.g.weight.copy_(torch.tensor([[1.0, -1.0]]).view(1, 2, 1, 1))
        module.g.bias.zero_()
        module.psi.weight.fill_(3.0)
        module.psi.bias.fill_(-1.0)
    return module


def test_clfc_attention_is_the_paper_equation() -> None:
    module = _module_with_weights()
    tumour = torch.tensor([[1.0, -1.0], [0.5, 2.0]]).view(1, 2, 1, 2)  # 2 pixels
    reference = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).view(1, 2, 1, 2)
    out, attention, aligned_t, aligned_r = module(tumour, reference)
    # Pixel 0: zeta = 1 + 2*0.5 = 2, g = 2 - 1 = 1 -> relu(-2) = 0 -> sigmoid(-1).
    # Pixel 1: zeta = -1 + 4 = 3, g = 0 - 3 = -3 -> relu(9) = 9 -> sigmoid(26).
    expected = torch.sigmoid(torch.tensor([-1.0, 26.0])).view(1, 1, 1, 2)
    torch.testing.assert_close(attention, expected)
    torch.testing.assert_close(aligned_t, torch.tensor([2.0, 3.0]).view(1, 1, 1, 2))
    torch.testing.assert_close(aligned_r, torch.tensor([1.0, -3.0]).view(1, 1, 1, 2))
    torch.testing.assert_close(out, tumour * expected)


def test_stop_gradient_before_zeta() -> None:
    """d(sum F'_T)/dF_T is A alone: no gradient reaches F_T through zeta."""
    module = _module_with_weights()
    tumour = torch.randn(1, 2, 3, 3, requires_grad=True)
    reference = torch.randn(1, 2, 3, 3)
    out, attention, _, _ = module(tumour, reference)
    out.sum().backward()
    torch.testing.assert_close(tumour.grad, attention.detach().expand_as(tumour))
    assert module.zeta.weight.grad is not None  # zeta itself still learns


def test_negative_cosine_known_values_and_stop_gradient() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    v = torch.tensor([[2.0, 0.0], [0.0, -1.0]], requires_grad=True)
    loss = negative_cosine(p, v)  # cos = 1 and -1 -> mean 0 -> D = 0
    assert float(loss.detach()) == pytest.approx(0.0)
    loss.backward()
    assert v.grad is None  # the target branch is stopped
    assert p.grad is not None
    assert float(negative_cosine(v.detach(), 3 * v.detach())) == pytest.approx(-1.0)


@torch.no_grad()
def test_simsiam_head_is_symmetric() -> None:
    torch.manual_seed(0)
    head = SimSiamHead(3, dim=8, hidden=4).eval()
    a, b = torch.randn(10, 3), torch.randn(10, 3)
    assert float(head(a, b)) == pytest.approx(float(head(b, a)), abs=1e-6)
    # The value is the mean of the two directions of -cos(H(K(.)), K(.)).
    v_a = head.projection(a.t()[None, :, :, None])
    v_b = head.projection(b.t()[None, :, :, None])
    expected = 0.5 * (
        negative_cosine(head.prediction(v_a), v_b) + negative_cosine(head.prediction(v_b), v_a)
    )
    assert float(head(a, b)) == pytest.approx(float(expected), abs=1e-6)


def test_normal_mask_at_a_coarse_level_needs_every_covered_pixel() -> None:
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0, 1] = False  # a tumour pixel in the top-left 2x2 block
    coarse = normal_at(mask, (2, 2))
    assert coarse[0, 0].tolist() == [[False, True], [True, True]]
    assert normal_at(mask, (4, 4)) is mask


def _net(reference: bool = True, simsiam: bool = True) -> CLFCNet:
    normal = NormalAppearanceModel(image_size=16, fov_mm=32.0, latent_dim=4, channels=(4, 8))
    return CLFCNet(
        6,
        3,
        WIDTHS,
        reference_slices=(0, 1, 2) if reference else None,
        spacing=(2.0, 2.0),
        normal_model=normal if reference else None,
        simsiam=simsiam,
        simsiam_dim=8,
        simsiam_hidden=4,
        simsiam_pixels=16,
    )


def test_network_shapes_ablations_and_padding() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 6, 20, 24)  # not multiples of 16: padded inside, cropped back
    images[:, :3, :2] = 0  # some background
    mask = torch.rand(2, 1, 20, 24) > 0.3
    full = _net().train()
    out = full(images, None, mask)
    assert out.logits.shape == (2, 3, 20, 24)
    assert [a.shape[-1] for a in out.attention] == [4, 8, 16, 32]
    assert out.simsiam is not None
    assert torch.isfinite(out.simsiam)
    assert float(out.simsiam.detach()) >= -4.0  # four levels of D in [-1, 1]

    baseline1 = _net(reference=False)
    assert baseline1.reference_net is None
    assert len(baseline1.clfc) == 0
    assert baseline1(images).attention == []

    baseline2 = _net(simsiam=False).train()
    assert len(baseline2.simsiam_heads) == 0
    assert baseline2(images, None, mask).simsiam is None
    assert len(baseline2(images).attention) == 4


def test_normal_model_is_frozen_and_derived_when_no_reference_is_given() -> None:
    torch.manual_seed(0)
    net = _net().train()
    assert not net.normal_model.training  # stays in eval mode under network.train()
    assert all(not p.requires_grad for p in net.normal_model.parameters())
    net.eval()
    images = torch.randn(1, 6, 16, 16)
    with torch.no_grad():
        derived = net(images).logits
        given = net(images, net.pseudo_healthy(images)).logits
    torch.testing.assert_close(derived, given)
    assert net.pseudo_healthy(images).shape == (1, 3, 16, 16)
