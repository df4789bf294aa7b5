"""The IntroVAE's loss terms and the normal-appearance model's canonical frame."""

from __future__ import annotations

import math

import pytest
import torch

from tumorseg.networks.introvae import IntroVAE, kl_divergence, reconstruction_error
from tumorseg.networks.normal_appearance import (
    NormalAppearanceModel,
    brain_centres,
    from_canonical,
    to_canonical,
)


def _blob(h: int, w: int, centre: tuple[float, float], radius: float) -> torch.Tensor:
    """``(1, 1, h, w)``: a smooth positive disc (a 'brain'), zero outside."""
    y, x = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    r2 = ((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / radius**2
    tilt = 0.4 * (x - centre[1]) / radius  # so that the blob is not symmetric
    image = torch.where(r2 < 1, 1.2 + torch.cos(math.pi * r2) + tilt, torch.zeros(()))
    return image[None, None]


def test_kl_and_reconstruction_error_known_values() -> None:
    mu = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    # KL = 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1): 0; 1/2 (1 + 0) + 1/2 (4 + 2 - ln 2 - 1).
    expected = torch.tensor([0.0, 0.5 + 0.5 * (5.0 - math.log(2.0))])
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)
    x = torch.zeros(2, 1, 2, 2)
    r = torch.ones(2, 1, 2, 2)
    r[1] *= 2
    torch.testing.assert_close(reconstruction_error(x, r), torch.tensor([2.0, 8.0]))


def test_introvae_shapes() -> None:
    vae = IntroVAE(image_size=16, latent_dim=5, channels=(4, 8)).eval()
    mu, logvar = vae.encoder(torch.randn(3, 1, 16, 16))
    assert mu.shape == logvar.shape == (3, 5)
    assert vae.decoder(mu).shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="multiple"):
        IntroVAE(image_size=18, channels=(4, 8))


def test_brain_centres_of_bounding_boxes() -> None:
    slices = torch.zeros(2, 1, 10, 12)
    slices[0, 0, 2:5, 3:10] = 1  # rows 2..4, cols 3..9
    centres, has = brain_centres(slices)
    assert centres[0].tolist() == [3.0, 6.0]
    assert has.tolist() == [True, False]


def test_frame_round_trip_at_native_scale_is_close_to_identity() -> None:
    """With fov = size * spacing the frame is a shift of the slice: out and back loses little."""
    image = _blob(30, 34, (14.0, 17.0), 11.0)
    framed = to_canonical(image, (2.0, 2.0), fov_mm=80.0, size=40)
    back = from_canonical(framed, image, (2.0, 2.0), fov_mm=80.0)
    brain = image != 0
    assert (back[~brain] == 0).all()
    # Half-pixel bilinear resampling blurs only the brain's edge, where it meets the zeros.
    interior = torch.nn.functional.max_pool2d((~brain).float(), 3, 1, 1) == 0
    assert float((back - image)[interior].abs().max()) < 0.05  # of a 0..2 range


def test_frame_is_translation_and_resolution_invariant() -> None:
    """The same brain, shifted or at another voxel size, lands on the same frame."""
    a = to_canonical(_blob(40, 40, (15.0, 18.0), 10.0), (2.0, 2.0), 96.0, 24)
    b = to_canonical(_blob(40, 40, (22.0, 21.0), 10.0), (2.0, 2.0), 96.0, 24)
    c = to_canonical(_blob(80, 80, (40.0, 40.0), 20.0), (1.0, 1.0), 96.0, 24)
    assert float((a - b).abs().max()) < 0.05
    assert float((a - c).abs().max()) < 0.3  # only the edge differs: a finer disc boundary
    interior = (a > 0.5) & (c > 0.5)
    assert float((a - c)[interior].abs().max()) < 0.05


def test_model_keeps_background_zero_and_shape() -> None:
    torch.manual_seed(0)
    model = NormalAppearanceModel(image_size=16, fov_mm=64.0, latent_dim=4, channels=(4, 8))
    model.eval()
    slices = torch.cat([_blob(20, 24, (10.0, 12.0), 8.0), torch.zeros(1, 1, 20, 24)])
    with torch.no_grad():
        out = model(slices, (2.0, 2.0))
    assert out.shape == slices.shape
    assert (out[slices == 0] == 0).all()
    assert (out[1] == 0).all()  # a slice without brain stays empty
