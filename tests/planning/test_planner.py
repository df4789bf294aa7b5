from __future__ import annotations

import subprocess
import sys
from math import prod
from pathlib import Path

import pytest

from tests.planning.fingerprints import dataset_json, fingerprint, uniform
from tumorseg.errors import TumorsegError
from tumorseg.planning.planner import plan_experiment
from tumorseg.planning.plans import ConfigurationPlan, Plans
from tumorseg.planning.show import format_plans
from tumorseg.planning.topology import divisors_of


def _plan(fp, device: str = "cuda", budget: float = 8.0, channels=None, **kw) -> Plans:
    dj = dataset_json(channels) if channels else dataset_json()
    return plan_experiment(fp, dj, memory_budget_gb=budget, device=device, **kw)


def _check_topology(cfg: ConfigurationPlan, budget_gb: float) -> None:
    divisors = divisors_of(cfg.topology)
    assert all(p % d == 0 for p, d in zip(cfg.patch_size, divisors, strict=True))
    assert cfg.batch_size >= 2
    assert cfg.estimated_memory_bytes <= budget_gb * 1024**3
    assert cfg.topology.features_per_stage[0] == 32
    assert len(cfg.topology.kernel_sizes) == len(cfg.topology.strides) == cfg.topology.n_stages


def test_isotropic_brats_like_reproduces_nnunet_reference() -> None:
    plans = _plan(uniform((1, 1, 1), (140, 170, 140)))
    assert set(plans.configurations) == {"2d", "2.5d", "3d_fullres"}
    assert any("3d_lowres not planned" in n for n in plans.notes)
    fullres = plans.configurations["3d_fullres"]
    assert plans.transpose_forward == (0, 1, 2)
    assert fullres.spacing == (1.0, 1.0, 1.0)
    assert fullres.patch_size == (128, 128, 128)  # nnU-Net's BraTS patch on 8 GB
    assert fullres.batch_size == 2
    assert max(fullres.topology.features_per_stage) == 320
    assert all(k == (3, 3, 3) for k in fullres.topology.kernel_sizes)
    _check_topology(fullres, 8.0)
    two_d = plans.configurations["2d"]
    assert two_d.batch_size > 20  # 2d gets large batches
    assert max(two_d.topology.features_per_stage) == 512
    _check_topology(two_d, 8.0)


def test_2_5d_shares_2d_data_and_stacks_context() -> None:
    plans = _plan(uniform((1, 1, 1), (140, 170, 140)), context_slices=3)
    two, two_half = plans.configurations["2d"], plans.configurations["2.5d"]
    assert two_half.context_slices == 3
    assert two.context_slices == 0
    assert two_half.input_channels_per_modality == 7
    assert (
        two_half.data_identifier
        == two.data_identifier
        == plans.configurations["3d_fullres"].data_identifier
    )
    assert two_half.spatial_dims == 2
    assert len(two_half.patch_size) == 2


def test_anisotropic_axis_goes_first_and_takes_10th_percentile() -> None:
    # Thick slices along array axis 1; 4 of 20 cases have thinner slices.
    spacings = [(0.9, 3.0, 0.9)] * 4 + [(0.9, 6.0, 0.9)] * 16
    shapes = [(256, 40, 256)] * 4 + [(256, 20, 256)] * 16
    plans = _plan(fingerprint(spacings, shapes))
    assert plans.transpose_forward == (1, 0, 2)
    fullres = plans.configurations["3d_fullres"]
    assert fullres.spacing[0] == pytest.approx(3.0)  # 10th percentile, not the 6 mm median
    assert fullres.spacing[1:] == (0.9, 0.9)
    assert fullres.topology.kernel_sizes[0][0] == 1  # no 3-wide kernel across thick slices
    assert fullres.topology.strides[1][0] == 1  # pooled in-plane first
    assert fullres.topology.kernel_sizes[0][1:] == (3, 3)
    _check_topology(fullres, 8.0)


def test_anisotropic_axis_with_many_voxels_keeps_median() -> None:
    spacings = [(3.0, 0.9, 0.9)] * 4 + [(6.0, 0.9, 0.9)] * 16
    plans = _plan(fingerprint(spacings, [(200, 200, 200)] * 20))
    assert plans.configurations["3d_fullres"].spacing[0] == pytest.approx(6.0)


def test_tiny_images() -> None:
    plans = _plan(uniform((1, 1, 1), (8, 8, 8)))
    fullres = plans.configurations["3d_fullres"]
    assert fullres.patch_size == (8, 8, 8)
    assert fullres.topology.n_stages == 2  # 8 -> 4, then a feature map would drop below 4
    assert fullres.batch_size == 2  # the 5% rule would allow less; 2 is the floor
    _check_topology(fullres, 8.0)


def test_very_large_images_get_lowres() -> None:
    plans = _plan(uniform((0.5, 0.5, 0.5), (400, 400, 400)))
    assert "3d_lowres" in plans.configurations
    fullres, lowres = plans.configurations["3d_fullres"], plans.configurations["3d_lowres"]
    assert prod(fullres.patch_size) / prod(fullres.median_shape) < 0.25
    assert all(lo > hi for lo, hi in zip(lowres.spacing, fullres.spacing, strict=True))
    assert prod(lowres.patch_size) / prod(lowres.median_shape) >= 0.25
    assert lowres.data_identifier != fullres.data_identifier
    assert fullres.topology.n_stages <= 6
    _check_topology(lowres, 8.0)


@pytest.mark.parametrize(
    ("shape", "order"), [((1, 240, 240), (0, 1, 2)), ((240, 240, 1), (2, 0, 1))]
)
def test_one_slice_data_plans_2d_only(
    shape: tuple[int, int, int], order: tuple[int, int, int]
) -> None:
    plans = _plan(uniform((1, 1, 1), shape))
    assert set(plans.configurations) == {"2d", "2.5d"}
    assert plans.transpose_forward == order
    assert any("3d_fullres not planned" in n for n in plans.notes)
    assert plans.configurations["2d"].patch_size == (256, 256)


def test_one_vs_four_channels() -> None:
    one = _plan(uniform((1, 1, 1), (140, 170, 140), channels=("FLAIR",)), channels=("FLAIR",))
    four = _plan(uniform((1, 1, 1), (140, 170, 140)))
    assert one.normalization == ("zscore_brain",)
    assert len(four.normalization) == 4
    # More input channels never buy a larger patch or batch.
    for name in ("2d", "2.5d", "3d_fullres"):
        a, b = one.configurations[name], four.configurations[name]
        assert prod(b.patch_size) * b.batch_size <= prod(a.patch_size) * a.batch_size


def test_cpu_plans_are_small() -> None:
    plans = _plan(uniform((1, 1, 1), (140, 170, 140)), device="cpu", budget=2.0)
    fullres = plans.configurations["3d_fullres"]
    assert prod(fullres.patch_size) <= 64**3
    assert fullres.batch_size == 2
    assert max(fullres.topology.features_per_stage) <= 128
    assert plans.configurations["2d"].batch_size <= 8
    assert plans.device == "cpu"
    # the CPU 2d (and 2.5d) network is 16-128 wide (measured, BENCHMARKS.md "CPU plan sweep");
    # 3d keeps nnU-Net's 32 features in the first stage
    for name in ("2d", "2.5d"):
        features = plans.configurations[name].topology.features_per_stage
        assert features[:4] == (16, 32, 64, 128) and max(features) == 128
    assert fullres.topology.features_per_stage[0] == 32
    # CPU plans say which configuration to train first (measured, see BENCHMARKS.md); GPU
    # plans do not.
    assert any(n.startswith("on a CPU, train 2d first") for n in plans.notes)
    gpu = _plan(uniform((1, 1, 1), (140, 170, 140)))
    assert not any("train 2d first" in n for n in gpu.notes)


def test_cpu_note_matches_a_non_cubic_patch() -> None:
    # BraTS grid: the 3d patch keeps the image's aspect ratio, so an edge exceeds 64 while the
    # voxel count stays within 64^3; the note states the cap as a voxel count for that reason.
    plans = _plan(uniform((1, 1, 1), (155, 240, 240)), device="cpu", budget=2.0)
    patch = plans.configurations["3d_fullres"].patch_size
    assert max(patch) > 64
    assert prod(patch) <= 262_144 == 64**3
    assert any("3d patch at most 262,144 voxels (64^3) in any shape" in n for n in plans.notes)


def test_smaller_budget_gives_smaller_patch() -> None:
    big = _plan(uniform((1, 1, 1), (140, 170, 140)), budget=8.0).configurations["3d_fullres"]
    small = _plan(uniform((1, 1, 1), (140, 170, 140)), budget=2.0).configurations["3d_fullres"]
    assert prod(small.patch_size) < prod(big.patch_size)
    assert small.estimated_memory_bytes <= 2 * 1024**3


def test_unknown_modality_and_device_are_errors() -> None:
    with pytest.raises(TumorsegError, match="unknown modality"):
        _plan(uniform((1, 1, 1), (64, 64, 64), channels=("CT",)))
    with pytest.raises(TumorsegError, match="unknown device"):
        _plan(uniform((1, 1, 1), (64, 64, 64)), device="tpu")
    with pytest.raises(TumorsegError, match="unknown configuration '4d'"):
        _plan(uniform((1, 1, 1), (64, 64, 64)), configurations=("2d", "4d"))


def test_plans_json_round_trip(tmp_path: Path) -> None:
    plans = _plan(uniform((0.5, 0.5, 0.5), (400, 400, 400)))
    plans.write(tmp_path / "plans.json")
    assert Plans.read(tmp_path / "plans.json") == plans


def test_planner_is_pure_and_deterministic() -> None:
    fp = uniform((0.9, 0.9, 4.0), (200, 220, 30))
    assert _plan(fp) == _plan(fp)


def test_show_table_lists_every_configuration() -> None:
    plans = _plan(uniform((0.5, 0.5, 0.5), (400, 400, 400)))
    text = format_plans(plans)
    for name, cfg in plans.configurations.items():
        row = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert "x".join(str(p) for p in cfg.patch_size) in row
        assert f" {cfg.batch_size} " in row


def test_planning_imports_no_torch() -> None:
    code = "import sys, tumorseg.workflows.plan_and_preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
