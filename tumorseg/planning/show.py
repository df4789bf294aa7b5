"""Readable table of a plans file (``tumorseg plan --show``)."""

from __future__ import annotations

from tumorseg.planning.plans import Plans


def _fmt(values: tuple, precision: int = 3) -> str:
    return "x".join(f"{v:.{precision}g}" if isinstance(v, float) else str(v) for v in values)


def format_plans(plans: Plans) -> str:
    """One row per configuration: spacing, patch, batch, stages, features, memory estimate."""
    header = (
        "configuration",
        "spacing (mm)",
        "median shape",
        "patch",
        "batch",
        "stages",
        "features",
        "memory (GB)",
        "data",
    )
    rows = [header]
    for name, cfg in plans.configurations.items():
        topo = cfg.topology
        feats = topo.features_per_stage
        rows.append(
            (
                name + (f" (K={cfg.context_slices})" if cfg.context_slices else ""),
                _fmt(cfg.spacing),
                _fmt(cfg.median_shape),
                _fmt(cfg.patch_size),
                str(cfg.batch_size),
                str(topo.n_stages),
                f"{feats[0]}..{feats[-1]}",
                f"{cfg.estimated_memory_bytes / 1024**3:.2f}",
                cfg.data_identifier,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"{plans.dataset_name} / {plans.plans_name}: device {plans.device}, budget "
        f"{plans.memory_budget_gb:g} GB, channels {', '.join(plans.channel_names)}, "
        f"transpose {plans.transpose_forward}",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.extend(f"note: {n}" for n in plans.notes)
    return "\n".join(lines)
