"""Deep supervision: a loss on every decoder output, with targets downsampled to match.

A network with deep supervision returns logits at full resolution and at each coarser decoder
stage (full resolution first). Output ``i`` lives at the resolution of encoder stage ``i``, i.e.
downsampled by the cumulative product of ``topology.strides[: i + 1]``; the target is resized to
each output's actual shape, so no scale bookkeeping is needed.

Target downsampling uses nearest-neighbour ("nearest-exact": the voxel nearest to each output
voxel's centre), as nnU-Net does, rather than max-pooling. Nearest keeps each coarse target an
honest sample of the label map and works unchanged for categorical labels (softmax) and binary
regions (sigmoid); max-pooling would protect structures smaller than one coarse voxel, but it
is undefined for categorical labels and inflates every region at coarse scales, biasing the
auxiliary losses toward over-segmentation. The small structures are still supervised at full
resolution, which carries the largest weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's output weights: ``1 / 2**i``, the lowest resolution excluded, summing to 1.

    The coarsest output gets weight 0 (for ``n > 1``) because its resolution is too low for a
    meaningful segmentation; ``n == 1`` gives ``[1.0]`` (no deep supervision).
    """
    if n < 1:
        raise ValueError(f"need at least one output, got {n}")
    weights = [1.0 / 2**i for i in range(n)]
    if n > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def resize_target(target: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Nearest-exact resize of ``(B, C, *S)`` to ``(B, C, *shape)``, any dtype (labels stay ints).

    Output voxel ``j`` along an axis of input size ``n`` and output size ``m`` takes input voxel
    ``floor((j + 0.5) * n / m)``: the voxel containing the output voxel's centre.
    """
    spatial = target.shape[2:]
    if len(shape) != len(spatial):
        raise ValueError(f"cannot resize {tuple(target.shape)} to spatial shape {tuple(shape)}")
    out = target
    for axis, (n, m) in enumerate(zip(spatial, shape, strict=True)):
        if n == m:
            continue
        index = ((torch.arange(m, device=target.device) + 0.5) * (n / m)).floor().long()
        out = out.index_select(axis + 2, index.clamp_(max=n - 1))
    return out


def deep_supervision_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    outputs: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    weights: Sequence[float] | None = None,
) -> torch.Tensor:
    """Weighted sum of ``loss_fn(output_i, target resized to output_i)``.

    Args:
        loss_fn: ``(logits (B, K, *S_i), target (B, C, *S_i)) -> scalar``.
        outputs: one logits tensor, or a list of them, full resolution first.
        target: ``(B, C, *S)`` full-resolution target (label map or region maps); it is resized
            to each output's exact spatial shape, so odd sizes cannot misalign.
        weights: one per output (default :func:`deep_supervision_weights`); zero-weight outputs
            are skipped.

    Returns:
        scalar tensor.
    """
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    weights = deep_supervision_weights(len(outputs)) if weights is None else list(weights)
    if len(weights) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs but {len(weights)} weights")
    total: torch.Tensor | None = None
    for output, weight in zip(outputs, weights, strict=True):
        if weight == 0:
            continue
        term = weight * loss_fn(output, resize_target(target, output.shape[2:]))
        total = term if total is None else total + term
    if total is None:
        raise ValueError("all deep-supervision weights are zero")
    return total
