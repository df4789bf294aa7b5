"""The scanner: how one session turns noise-free signal into the four images a dataset holds.

BraTS pools scans from many institutions, 1.5 T and 3 T scanners and clinical protocols
(Menze et al. 2015, IEEE TMI 34(10); Bakas et al. 2018, arXiv:1811.02629); the released images
are co-registered, resampled to 1 mm and skull-stripped, but their intensities are neither
bias-corrected nor standardised. The realistic generator draws one acquisition per session
and applies, per channel and in the order a scanner and the BraTS pipeline would:

1. **Point-spread blur**: a Gaussian of 0-1 mm standard deviation (reconstruction filters,
   interpolation during co-registration).
2. **Bias field**: a smooth multiplicative receive-coil field shared by the channels of a
   session plus a weaker field of each channel's own; strong at 3 T (log standard deviation
   0.1-0.3), weaker at 1.5 T (0.04-0.15). The intensity non-uniformity that N3 / N4 correct
   (Sled et al. 1998, IEEE TMI 17(1); Tustison et al. 2010, IEEE TMI 29(6)).
3. **Thick slices**: 2D acquisitions integrate the signal over 3-6 mm slices (BraTS: T2 and
   FLAIR mostly 2D axial, some coronal or sagittal, 2-6 mm; Menze 2015), and are then
   interpolated back to the isotropic grid: detail across the slices is lost (partial volume
   along one axis) while in-plane detail stays. T1c is always a 3D acquisition.
4. **Rician noise**: noise is Gaussian on the real and imaginary channels, so a magnitude
   image is Rician (Gudbjartsson & Patz 1995, MRM 34(6)); drawn per sample (per thick slice
   before interpolation). Its standard deviation is drawn for a 1 mm^3 voxel (2-6 % of white
   matter at 3 T, 3-10 % at 1.5 T) and divided by the square root of the sampled voxel's
   volume, as averaging a larger volume does: a 2 mm grid is about 2.8 times cleaner.
5. **Residual misregistration**: T1, T2 and FLAIR are shifted by up to 0.8 mm against the
   T1c (the reference of the labels), as rigid co-registration leaves them.
6. **Intensity scale and response**: an arbitrary scale (scanner units) and a power-law
   response (exponent 0.8-1.25) that changes the contrast between tissues from one protocol
   to the next; this is what intensity standardisation (Nyul & Udupa 1999, MRM 42(6)) and
   per-case z-scoring are for.

Outside the (irregular) skull-stripping mask the images are 0, as BraTS distributes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from tumorseg.data.synthetic.contrasts import CHANNELS
from tumorseg.data.synthetic.fields import smooth_random_field

#: Channels acquired as 2D thick slices with this probability, and the axes they use
#: (probabilities for array axes 0 axial, 1 coronal, 2 sagittal).
_THICK = {
    "T1": (0.25, (0.5, 0.0, 0.5)),
    "T1c": (0.0, (1.0, 0.0, 0.0)),
    "T2": (0.6, (0.85, 0.1, 0.05)),
    "FLAIR": (0.6, (0.6, 0.2, 0.2)),
}
#: Channels that stay where the labels were drawn (registration reference).
_REFERENCE = "T1c"


@dataclass(frozen=True)
class ChannelAcquisition:
    """How one channel of a session is acquired."""

    scale: float  # scanner units per unit of white-matter signal
    gamma: float  # exponent of the intensity response (protocol contrast differences)
    noise: float  # Rician sigma relative to white matter, for a 1 mm^3 voxel
    blur_mm: float  # standard deviation of the extra Gaussian point-spread function
    bias: float  # standard deviation of this channel's own log bias field
    slice_mm: float  # slice thickness of a 2D acquisition; 0 for a 3D acquisition
    slice_axis: int  # array axis across the slices
    slice_offset: float  # first slice centre, in slice thicknesses from the grid's start
    shift_mm: tuple[float, float, float]  # residual misregistration (Z, Y, X)


@dataclass(frozen=True)
class Acquisition:
    """One scanning session: a field strength, a shared coil field and four channels."""

    field_strength: float  # tesla: 1.5 or 3
    shared_bias: float  # standard deviation of the session's log coil field
    bias_correlation_mm: float  # feature size of the bias fields
    channels: dict[str, ChannelAcquisition]

    def info(self) -> dict[str, Any]:
        """JSON-able summary for ``synthetic_cases.json``."""
        return {
            "field_strength_t": self.field_strength,
            "bias_log_std": round(self.shared_bias, 3),
            "noise": {ch: round(c.noise, 4) for ch, c in self.channels.items()},
            "gamma": {ch: round(c.gamma, 3) for ch, c in self.channels.items()},
            "thick_slices": {
                ch: {"mm": round(c.slice_mm, 2), "axis": c.slice_axis}
                for ch, c in self.channels.items()
                if c.slice_mm > 0
            },
        }


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    """Draw a session: 55 % at 3 T (stronger bias, less noise), the rest at 1.5 T."""
    high_field = bool(rng.random() < 0.55)
    bias_range = (0.1, 0.3) if high_field else (0.04, 0.15)
    noise_range = (0.02, 0.06) if high_field else (0.03, 0.10)
    channels = {}
    for channel in CHANNELS:
        p_thick, axes = _THICK[channel]
        thick = bool(rng.random() < p_thick)
        shift = np.zeros(3)
        if channel != _REFERENCE:
            direction = rng.normal(size=3)
            shift = direction / np.linalg.norm(direction) * rng.uniform(0.0, 0.8)
        noise = float(np.exp(rng.uniform(*np.log(noise_range))))
        channels[channel] = ChannelAcquisition(
            scale=float(np.exp(rng.uniform(np.log(100.0), np.log(3000.0)))),
            gamma=float(np.clip(np.exp(rng.normal(0.0, 0.1)), 0.8, 1.25)),
            noise=noise * (1.3 if channel == "FLAIR" else 1.0),
            blur_mm=float(rng.uniform(0.0, 1.0)),
            bias=float(rng.uniform(0.02, 0.06)),
            slice_mm=float(rng.uniform(3.0, 6.0)) if thick else 0.0,
            slice_axis=int(rng.choice(3, p=axes)),
            slice_offset=float(rng.random()),
            shift_mm=(float(shift[0]), float(shift[1]), float(shift[2])),
        )
    return Acquisition(
        field_strength=3.0 if high_field else 1.5,
        shared_bias=float(rng.uniform(*bias_range)),
        bias_correlation_mm=float(rng.uniform(60.0, 120.0)),
        channels=channels,
    )


def acquire(
    signals: list[np.ndarray],
    inside: np.ndarray,
    acquisition: Acquisition,
    rng: np.random.Generator,
    spacing: float,
) -> list[np.ndarray]:
    """Images (float32 ``(Z, Y, X)``, order ``CHANNELS``) from noise-free ``signals`` (white
    matter ~1, 0 outside the brain), masked to ``inside`` (bool)."""
    shape = inside.shape
    shared = smooth_random_field(rng, shape, spacing, acquisition.bias_correlation_mm)
    images = []
    for channel, signal in zip(CHANNELS, signals, strict=True):
        params = acquisition.channels[channel]
        image = signal
        if params.blur_mm > 0.05:
            image = ndimage.gaussian_filter(image, params.blur_mm / spacing)
        own = smooth_random_field(rng, shape, spacing, acquisition.bias_correlation_mm)
        image = image * np.exp(acquisition.shared_bias * shared + params.bias * own)
        if params.slice_mm > spacing:
            image = _thick_slices(image, params, rng, spacing)
        else:
            image = _rician(image, params.noise / spacing**1.5, rng)
        if any(abs(s) > 0.01 for s in params.shift_mm):
            image = ndimage.shift(image, [s / spacing for s in params.shift_mm], order=1)
        image = np.where(inside, np.maximum(image, 0.0), 0.0)
        images.append((params.scale * image**params.gamma).astype(np.float32))
    return images


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, sigma, size=(2, *signal.shape)).astype(np.float32)
    return np.hypot(signal + noise[0], noise[1])


def _thick_slices(
    image: np.ndarray, params: ChannelAcquisition, rng: np.random.Generator, spacing: float
) -> np.ndarray:
    """Integrate over slices of ``slice_mm`` (Gaussian profile, FWHM = thickness), sample at the
    slice centres, add noise there, and interpolate linearly back to the grid."""
    axis, thickness = params.slice_axis, params.slice_mm
    n = image.shape[axis]
    # The grid voxel already averages over `spacing`: only the difference is added.
    sigma = np.sqrt(max(thickness**2 - spacing**2, 0.0)) / 2.355 / spacing
    profile = ndimage.gaussian_filter1d(image, sigma, axis=axis)
    first = params.slice_offset * thickness
    centres = np.arange(first, (n - 1) * spacing + 1e-6, thickness) / spacing
    if len(centres) < 2:
        return _rician(image, params.noise / spacing**1.5, rng)
    slices = _interpolate_axis(profile, centres, axis)
    slices = _rician(slices, params.noise / np.sqrt(spacing * spacing * thickness), rng)
    grid = (np.arange(n) - centres[0]) / (thickness / spacing)
    return _interpolate_axis(slices, grid, axis)


def _interpolate_axis(volume: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``volume`` at fractional indices ``positions`` along ``axis``
    (clamped to the ends)."""
    n = volume.shape[axis]
    p = np.clip(positions, 0.0, n - 1.0)
    low = np.minimum(np.floor(p).astype(int), n - 1)
    high = np.minimum(low + 1, n - 1)
    weight = (p - low).astype(np.float32)
    shape = [1] * volume.ndim
    shape[axis] = len(p)
    weight = weight.reshape(shape)
    below, above = np.take(volume, low, axis=axis), np.take(volume, high, axis=axis)
    return below * (1.0 - weight) + above * weight
