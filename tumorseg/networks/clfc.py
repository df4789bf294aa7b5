"""The CLFC network (Liu et al., MICCAI 2022; ``seeds/clfc_liu.txt``): feature comparison with a
pseudo-healthy brain.

- **Segmentation backbone** and **normal-appearance (reference) network**: each an encoder of
  four ``conv3x3 - BN - ReLU - maxpool`` stages and a decoder of four transposed convolutions
  (kernel 4, stride 2: back to full resolution), widths ``w1..w4`` from the plans. Decoder level
  ``l`` (coarse to fine: widths ``w4, w3, w2, w1``) takes the previous level and, where one
  exists at its resolution, the encoder feature of that resolution (U-Net skips). A final
  ``conv3x3`` gives the logits.
- **CLFC module** at each of the four decoder levels: ``A_l = sigmoid(psi(ReLU(-zeta(sg(F_T)) *
  g(F_R))))`` and ``F'_T = A_l * F_T``, where ``zeta``, ``g`` (``C -> C / reduction``) and
  ``psi`` (``-> 1``) are 1x1 convolutions and ``sg`` stops the gradient (the backbone is not
  pulled towards the alignment). ``F'_T`` continues through the backbone's decoder.
- **SimSiam** (training only): at each level, the aligned vectors ``zeta(sg(F_T))(x)`` and
  ``g(F_R)(x)`` of normal pixels ``x`` are a positive pair; projection ``K`` and prediction ``H``
  are MLPs of 1x1 convolutions (``K``: three layers with BN, ``H``: a bottleneck of two), the
  loss ``1/2 (D(H(K(a)), K(b)) + D(H(K(b)), K(a)))`` with ``D(p, v) = -cos(p, sg(v))``, averaged
  over the pixels, summed over the levels.

The reference network's input is the pseudo-healthy T1 of the input's T1 slices (``2K + 1`` of
them for 2.5d): given by the caller during training (the cached reference images), otherwise
computed inside by the frozen :class:`~tumorseg.networks.normal_appearance.
NormalAppearanceModel`, so inference needs the images only. ``reference=False`` builds the
backbone alone (Baseline-1).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional

from tumorseg.networks.normal_appearance import NormalAppearanceModel

#: Encoder stages and decoder levels of both sub-networks (Liu et al., Fig. 1).
LEVELS = 4


class EncoderDecoder(nn.Module):
    """Four ``conv-BN-ReLU-maxpool`` stages down, four transposed convolutions up.

    ``forward(x, modulate)``: ``(B, C_in, H, W)`` with ``H, W`` divisible by 16 -> the four
    decoder features, coarse to fine, ``(B, w4, H/8, W/8) ... (B, w1, H, W)``; ``modulate(l, F)``
    may replace level ``l``'s feature before the next level uses it (the CLFC module).
    """

    def __init__(self, in_channels: int, widths: Sequence[int], decoder_norm: bool = True) -> None:
        super().__init__()
        if len(widths) != LEVELS:
            raise ValueError(f"CLFC encoders have {LEVELS} stages; got widths {tuple(widths)}")
        self.encoder = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.encoder.append(
                nn.Sequential(
                    nn.Conv2d(previous, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            previous = width
        # Level l upsamples to the resolution of encoder stage 3 - l (full resolution at l = 3).
        outs = (widths[3], widths[2], widths[1], widths[0])
        ins = (widths[3], outs[0] + widths[2], outs[1] + widths[1], outs[2] + widths[0])
        self.decoder = nn.ModuleList(
            _up(c_in, c_out, decoder_norm) for c_in, c_out in zip(ins, outs, strict=True)
        )
        self.widths = outs

    def forward(
        self,
        x: torch.Tensor,
        modulate: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        features = []
        for level, up in enumerate(self.decoder):
            inputs = x if level == 0 else torch.cat([x, skips[LEVELS - 1 - level]], dim=1)
            x = up(inputs)
            if modulate is not None:
                x = modulate(level, x)
            features.append(x)
        return features


def _up(in_channels: int, out_channels: int, norm: bool) -> nn.Module:
    conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=not norm)
    if not norm:
        return conv
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class CLFCModule(nn.Module):
    """``(F_T, F_R) -> (A * F_T, A, zeta(sg(F_T)), g(F_R))`` with ``A`` ``(B, 1, h, w)``."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.zeta = nn.Conv2d(channels, hidden, 1)
        self.g = nn.Conv2d(channels, hidden, 1)
        self.psi = nn.Conv2d(hidden, 1, 1)

    def forward(
        self, tumour: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        aligned_t = self.zeta(tumour.detach())
        aligned_r = self.g(reference)
        attention = torch.sigmoid(self.psi(functional.relu(-aligned_t * aligned_r)))
        return tumour * attention, attention, aligned_t, aligned_r


def _mlp(widths: Sequence[int], last_norm: bool) -> nn.Sequential:
    """1x1-convolution MLP ``widths[0] -> ... -> widths[-1]`` (BN + ReLU between layers)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        last = i == len(widths) - 2
        layers.append(nn.Conv2d(a, b, 1, bias=last and not last_norm))
        if not last or last_norm:
            layers.append(nn.BatchNorm2d(b))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SimSiamHead(nn.Module):
    """Projection ``K`` and prediction ``H`` of one level (Chen & He's SimSiam shapes)."""

    def __init__(self, channels: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.projection = _mlp((channels, dim, dim, dim), last_norm=True)
        self.prediction = _mlp((dim, hidden, dim), last_norm=False)

    def forward(self, aligned_t: torch.Tensor, aligned_r: torch.Tensor) -> torch.Tensor:
        """Symmetric SimSiam loss of ``(P, C)`` pixel-vector pairs (scalar)."""
        # (P, C) -> (1, C, P, 1): a 1x1 convolution over P pixels, batch norm over the pixels.
        v_t = self.projection(aligned_t.t()[None, :, :, None])
        v_r = self.projection(aligned_r.t()[None, :, :, None])
        p_t, p_r = self.prediction(v_t), self.prediction(v_r)
        return 0.5 * (negative_cosine(p_t, v_r) + negative_cosine(p_r, v_t))


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SimSiam's ``D(p, v) = -cos(p, sg(v))`` over dim 1, averaged over the other dims."""
    return -functional.cosine_similarity(prediction, target.detach(), dim=1).mean()


def normal_at(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``(B, 1, H, W)`` bool normal-region mask at a coarser ``size``: a coarse pixel is normal
    when every full-resolution pixel it covers is."""
    factor = mask.shape[-1] // size[-1]
    if factor == 1:
        return mask
    outside = functional.max_pool2d((~mask).float(), factor)
    return outside == 0


@dataclass
class CLFCOutput:
    """``logits`` ``(B, K, H, W)``; per level (coarse to fine) the attention ``A_l``
    ``(B, 1, h, w)``; ``simsiam`` the summed SimSiam loss when a normal mask was given."""

    logits: torch.Tensor
    attention: list[torch.Tensor] = field(default_factory=list)
    simsiam: torch.Tensor | None = None


class CLFCNet(nn.Module):
    """Backbone, reference network, CLFC modules, SimSiam heads and the frozen normal model.

    Args:
        in_channels: backbone input channels (modalities x slices).
        out_channels: logits channels.
        widths: ``w1..w4``.
        reference_slices: indices (in the input) of the T1 slices the pseudo-healthy image is
            made from; ``None`` builds the backbone alone (Baseline-1).
        spacing: in-plane spacing (mm) of the input, for the normal model's frame.
        normal_model: the frozen normal-appearance model (with ``reference_slices``).
        simsiam: build the SimSiam heads (off: Baseline-2).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: Sequence[int],
        *,
        reference_slices: Sequence[int] | None = None,
        spacing: Sequence[float] = (1.0, 1.0),
        normal_model: NormalAppearanceModel | None = None,
        simsiam: bool = True,
        clfc_reduction: int = 2,
        simsiam_dim: int = 256,
        simsiam_hidden: int = 128,
        simsiam_pixels: int = 1024,
        decoder_norm: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = EncoderDecoder(in_channels, widths, decoder_norm)
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)
        self.reference_slices = tuple(reference_slices) if reference_slices is not None else None
        self.spacing = tuple(float(s) for s in spacing)
        self.simsiam_pixels = simsiam_pixels
        self.reference_net: EncoderDecoder | None = None
        self.normal_model: NormalAppearanceModel | None = None
        self.clfc = nn.ModuleList()
        self.simsiam_heads = nn.ModuleList()
        if self.reference_slices is None:
            return
        if normal_model is None:
            raise ValueError("a CLFC network with a reference needs the normal-appearance model")
        self.reference_net = EncoderDecoder(len(self.reference_slices), widths, decoder_norm)
        self.normal_model = normal_model
        self.normal_model.requires_grad_(False)
        widths_fine = self.backbone.widths
        self.clfc.extend(CLFCModule(w, clfc_reduction) for w in widths_fine)
        if simsiam:
            hidden = [max(w // clfc_reduction, 1) for w in widths_fine]
            self.simsiam_heads.extend(
                SimSiamHead(h, simsiam_dim, simsiam_hidden) for h in hidden
            )

    def train(self, mode: bool = True) -> CLFCNet:
        super().train(mode)
        if self.normal_model is not None:
            self.normal_model.eval()  # frozen: its batch norm keeps the healthy statistics
        return self

    @torch.no_grad()
    def pseudo_healthy(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, S, H, W)``: the normal model's image of each T1 slice."""
        assert self.normal_model is not None
        assert self.reference_slices is not None
        index = torch.tensor(self.reference_slices, device=images.device)
        t1 = images.index_select(1, index)
        b, s, h, w = t1.shape
        healthy = self.normal_model(t1.reshape(b * s, 1, h, w).float(), self.spacing)
        return healthy.reshape(b, s, h, w).to(images.dtype)

    def forward(
        self,
        images: torch.Tensor,
        reference: torch.Tensor | None = None,
        normal_mask: torch.Tensor | None = None,
    ) -> CLFCOutput:
        """``images`` ``(B, C_in, H, W)``; ``reference`` ``(B, S, H, W)`` pseudo-healthy slices
        (computed when None); ``normal_mask`` ``(B, 1, H, W)`` bool enables the SimSiam loss.

        Inputs whose ``H, W`` are not multiples of 16 are zero-padded at the bottom and right for
        the four poolings (padding counts as outside the brain) and the outputs cropped back;
        attention maps keep the padded size.
        """
        h, w = images.shape[-2:]
        pad = (0, -w % 16, 0, -h % 16)
        if any(pad):
            images = functional.pad(images, pad)
            reference = None if reference is None else functional.pad(reference, pad)
            if normal_mask is not None:
                normal_mask = functional.pad(normal_mask, pad, value=False)
        out = self._forward(images, reference, normal_mask)
        out.logits = out.logits[..., :h, :w]
        return out

    def _forward(
        self,
        images: torch.Tensor,
        reference: torch.Tensor | None,
        normal_mask: torch.Tensor | None,
    ) -> CLFCOutput:
        if self.reference_net is None:
            return CLFCOutput(self.head(self.backbone(images)[-1]))
        if reference is None:
            reference = self.pseudo_healthy(images)
        reference_features = self.reference_net(reference)
        attention: list[torch.Tensor] = []
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []

        def compare(level: int, tumour: torch.Tensor) -> torch.Tensor:
            out, a, aligned_t, aligned_r = self.clfc[level](tumour, reference_features[level])
            attention.append(a)
            pairs.append((aligned_t, aligned_r))
            return out

        features = self.backbone(images, compare)
        logits = self.head(features[-1])
        simsiam = None
        if normal_mask is not None and len(self.simsiam_heads):
            simsiam = self.simsiam_loss(pairs, normal_mask)
        return CLFCOutput(logits, attention, simsiam)

    def simsiam_loss(
        self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], normal_mask: torch.Tensor
    ) -> torch.Tensor:
        """Sum over levels of the SimSiam loss on (up to ``simsiam_pixels`` random) normal
        pixels; a level without normal pixels adds 0."""
        total = torch.zeros((), device=normal_mask.device)
        for (aligned_t, aligned_r), head in zip(pairs, self.simsiam_heads, strict=True):
            mask = normal_at(normal_mask, aligned_t.shape[-2:])[:, 0]  # (B, h, w)
            a = aligned_t.permute(0, 2, 3, 1)[mask].float()  # (P, C)
            r = aligned_r.permute(0, 2, 3, 1)[mask].float()
            if a.shape[0] < 2:  # batch norm needs two pixels
                continue
            if 0 < self.simsiam_pixels < a.shape[0]:
                keep = torch.randperm(a.shape[0], device=a.device)[: self.simsiam_pixels]
                a, r = a[keep], r[keep]
            total = total + head(a, r)
        return total
