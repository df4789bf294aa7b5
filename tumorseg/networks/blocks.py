"""Dimension-agnostic building blocks for convolutional segmentation networks.

Blocks receive their operations (convolution, normalisation, non-linearity, transposed
convolution) as a :class:`ConvOps` bundle instead of hard-coding 2D or 3D layers, so one
architecture serves 2d, 2.5d and 3d configurations. Tensor shapes are written
``(B, C, *spatial)`` where ``spatial`` has ``spatial_dims`` axes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

#: Negative slope of the leaky ReLU (nnU-Net's choice); Kaiming init uses the same value.
LEAKY_SLOPE = 1e-2


def conv_op(spatial_dims: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    """``nn.Conv2d`` or ``nn.Conv3d`` for ``spatial_dims`` 2 or 3."""
    return _pick(spatial_dims, nn.Conv2d, nn.Conv3d)


def norm_op(spatial_dims: int) -> type[nn.InstanceNorm2d] | type[nn.InstanceNorm3d]:
    """Instance norm for ``spatial_dims``: per-sample statistics work with batch sizes of 2."""
    return _pick(spatial_dims, nn.InstanceNorm2d, nn.InstanceNorm3d)


def transposed_conv_op(
    spatial_dims: int,
) -> type[nn.ConvTranspose2d] | type[nn.ConvTranspose3d]:
    """``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d`` for ``spatial_dims`` 2 or 3."""
    return _pick(spatial_dims, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _pick(spatial_dims: int, two: type, three: type) -> type:
    if spatial_dims == 2:
        return two
    if spatial_dims == 3:
        return three
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def _default_norm(channels: int, spatial_dims: int) -> nn.Module:
    # affine=True: the learnable scale/shift nnU-Net uses; eps as in nnU-Net.
    return norm_op(spatial_dims)(channels, eps=1e-5, affine=True)


def _default_nonlin() -> nn.Module:
    return nn.LeakyReLU(negative_slope=LEAKY_SLOPE, inplace=True)


@dataclass(frozen=True)
class ConvOps:
    """The operations a network is built from.

    ``norm(channels)`` and ``nonlin()`` are factories returning fresh modules; ``conv`` and
    ``transposed`` are the layer classes.
    """

    spatial_dims: int
    conv: type[nn.Module]
    transposed: type[nn.Module]
    norm: Callable[[int], nn.Module]
    nonlin: Callable[[], nn.Module] = field(default=_default_nonlin)

    @classmethod
    def default(cls, spatial_dims: int) -> ConvOps:
        """nnU-Net's plain-conv choice: conv, instance norm (affine), leaky ReLU(0.01)."""
        return cls(
            spatial_dims=spatial_dims,
            conv=conv_op(spatial_dims),
            transposed=transposed_conv_op(spatial_dims),
            norm=lambda channels: _default_norm(channels, spatial_dims),
        )


def as_tuple(value: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """Broadcast an int to ``spatial_dims`` axes; check a sequence has that many."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    out = tuple(int(v) for v in value)
    if len(out) != spatial_dims:
        raise ValueError(f"expected {spatial_dims} values, got {out}")
    return out


class ConvNormAct(nn.Module):
    """Convolution -> normalisation -> non-linearity.

    ``(B, in_channels, *S) -> (B, out_channels, *S / stride)``; padding ``dilation * (kernel //
    2)`` per axis keeps the size for stride 1 (kernels are odd). ``dilation`` applies to every
    axis whose kernel is larger than 1 (the recurrence trainer's dilated encoders).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        ops: ConvOps,
        stride: int | Sequence[int] = 1,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        kernel = as_tuple(kernel_size, ops.spatial_dims)
        dilations = tuple(dilation if k > 1 else 1 for k in kernel)
        self.conv = ops.conv(
            in_channels,
            out_channels,
            kernel_size=kernel,
            stride=as_tuple(stride, ops.spatial_dims),
            padding=tuple(d * (k // 2) for k, d in zip(kernel, dilations, strict=True)),
            dilation=dilations,
            # The following normalisation removes any bias, so the conv needs none.
            bias=False,
        )
        self.norm = ops.norm(out_channels)
        self.nonlin = ops.nonlin()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.norm(self.conv(x)))


class StackedConvBlock(nn.Sequential):
    """``n_convs`` :class:`ConvNormAct` layers; only the first one strides (downsampling).

    ``(B, in_channels, *S) -> (B, out_channels, *S / first_stride)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        ops: ConvOps,
        n_convs: int = 2,
        first_stride: int | Sequence[int] = 1,
    ) -> None:
        if n_convs < 1:
            raise ValueError(f"n_convs must be >= 1, got {n_convs}")
        layers = [ConvNormAct(in_channels, out_channels, kernel_size, ops, first_stride)]
        layers += [
            ConvNormAct(out_channels, out_channels, kernel_size, ops) for _ in range(n_convs - 1)
        ]
        super().__init__(*layers)


class TransposedConvUpsample(nn.Module):
    """Learned upsampling by ``stride`` with a transposed conv whose kernel equals its stride.

    ``(B, in_channels, *S) -> (B, out_channels, *S * stride)``; kernel == stride makes the
    output size exact and free of checkerboard overlap.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int | Sequence[int], ops: ConvOps
    ) -> None:
        super().__init__()
        step = as_tuple(stride, ops.spatial_dims)
        self.up = ops.transposed(
            in_channels, out_channels, kernel_size=step, stride=step, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


def kaiming_init(module: nn.Module, negative_slope: float = LEAKY_SLOPE) -> None:
    """He initialisation for leaky-ReLU networks (apply with ``network.apply(kaiming_init)``).

    Convolutions and transposed convolutions get ``kaiming_normal_`` with the leaky slope, biases
    zero; normalisation layers keep PyTorch's defaults (weight 1, bias 0).
    """
    if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        nn.init.kaiming_normal_(module.weight, a=negative_slope)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
