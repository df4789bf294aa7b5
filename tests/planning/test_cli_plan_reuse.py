"""``plan --show`` changes nothing; plans that trained runs were made from are replaced only with
``--force``; ``plan`` says which device it planned for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tumorseg.cli import app
from tumorseg.errors import TumorsegError
from tumorseg.paths import Roots
from tumorseg.planning.plans import Plans
from tumorseg.training.run import prepare_run, write_run_files
from tumorseg.utils import device as device_module

runner = CliRunner()
DATASET = "Dataset001_Tiny"


def _roots(roots: Roots) -> list[str]:
    return [
        "--raw", str(roots.raw), "--preprocessed", str(roots.preprocessed),
        "--results", str(roots.results), "-np", "1",
    ]  # fmt: skip


def _plan(roots: Roots, *args: str) -> object:
    return runner.invoke(app, ["plan", "1", *args, *_roots(roots)])


def _plans_file(roots: Roots, name: str = "tumorsegPlans") -> Path:
    return roots.preprocessed / DATASET / f"{name}.json"


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A laptop without GPU: no driver files, not an Apple-silicon Mac."""
    monkeypatch.setattr(device_module, "gpu_driver_present", lambda: False)
    monkeypatch.setattr(device_module, "apple_silicon", lambda: False)


def test_show_prints_the_stored_plans_and_leaves_them_as_they_are(
    tiny_dataset: Path, roots: Roots, no_gpu: None
) -> None:
    made = _plan(roots, "--device", "cpu", "-c", "3d_fullres")
    assert made.exit_code == 0, made.output
    path = _plans_file(roots)
    before = path.read_bytes(), path.stat().st_mtime_ns
    data = roots.preprocessed / DATASET / "tumorsegPlans_fullres"
    data_before = {p.name: p.stat().st_mtime_ns for p in data.iterdir()}
    # --show with other planning options (which used to re-plan with them) shows what is stored.
    shown = _plan(roots, "--show", "--device", "cuda", "-c", "2d")
    assert shown.exit_code == 0, shown.output
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert {p.name: p.stat().st_mtime_ns for p in data.iterdir()} == data_before
    assert f"{DATASET} / tumorsegPlans: device cpu" in shown.output
    rows = [line.split()[0] for line in shown.output.splitlines() if line[:2] in ("2d", "3d")]
    assert rows == ["3d_fullres"]  # the stored configuration, not the -c given with --show
    assert f"stored plans: {path}" in shown.output
    assert "device:" not in shown.output  # nothing was planned, so no device was chosen


def test_show_before_anything_is_planned_says_so_and_plans(
    tiny_dataset: Path, roots: Roots, no_gpu: None
) -> None:
    result = _plan(roots, "--show", "--no-preprocess", "-c", "2d")
    assert result.exit_code == 0, result.output
    assert f"no plans 'tumorsegPlans' for {DATASET} yet: planning them now" in result.output
    assert "device: cpu (no GPU found)" in result.output
    assert list(Plans.read(_plans_file(roots)).configurations) == ["2d"]
    assert any(line.startswith("2d ") for line in result.output.splitlines())  # and its table


def _train_run_files(roots: Roots) -> str:
    """What `tumorseg train` writes into the run folder before its first step."""
    run = prepare_run(roots, "1", "3d_fullres", 0, loop_values={"device": "cpu"})
    write_run_files(run)
    return run.run_folder.name


def test_replanning_plans_a_trained_run_uses_needs_force(
    tiny_dataset: Path, roots: Roots, no_gpu: None
) -> None:
    assert _plan(roots, "--device", "cpu", "-c", "3d_fullres").exit_code == 0
    run = _train_run_files(roots)
    path = _plans_file(roots)
    stored = path.read_bytes()
    # The same options again change nothing, so they need no --force.
    again = _plan(roots, "--device", "cpu", "-c", "3d_fullres")
    assert again.exit_code == 0, again.output
    assert path.read_bytes() == stored
    # GPU plans over the CPU plans the run was made from: refused, nothing written.
    refused = _plan(roots, "--device", "cuda", "-c", "3d_fullres")
    assert isinstance(refused.exception, TumorsegError), refused.output
    message = str(refused.exception)
    assert message.startswith(f"{path}: trained runs were made from these plans ({run})")
    assert "device cpu -> cuda" in message
    assert message.endswith("pass --force to replace them anyway, or --plans NEW_NAME to keep both")
    assert path.read_bytes() == stored
    # A new name plans alongside; --force replaces.
    beside = _plan(roots, "--device", "cuda", "-c", "3d_fullres", "--plans", "gpu")
    assert beside.exit_code == 0, beside.output
    assert Plans.read(_plans_file(roots, "gpu")).device == "cuda"
    assert path.read_bytes() == stored
    forced = _plan(roots, "--device", "cuda", "-c", "3d_fullres", "--no-preprocess", "--force")
    assert forced.exit_code == 0, forced.output
    assert Plans.read(path).device == "cuda"


def test_replanning_unused_plans_needs_no_force(
    tiny_dataset: Path, roots: Roots, no_gpu: None
) -> None:
    assert _plan(roots, "--device", "cpu", "--no-preprocess").exit_code == 0
    # A run folder made from other plans (an earlier --force) does not hold these.
    other = roots.results / DATASET / "default__tumorsegPlans__2d"
    other.mkdir(parents=True)
    (other / "plans.json").write_text('{"plans_name": "tumorsegPlans"}')
    result = _plan(roots, "--device", "cuda", "--no-preprocess")
    assert result.exit_code == 0, result.output
    assert Plans.read(_plans_file(roots)).device == "cuda"


def test_plan_defaults_to_the_device_present(tiny_dataset: Path, roots: Roots) -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"  # an Apple GPU gets cpu plans
    result = _plan(roots, "--no-preprocess", "-c", "2d")
    assert result.exit_code == 0, result.output
    assert f"device: {expected} (" in result.output.splitlines()[0]
    assert Plans.read(_plans_file(roots)).device == expected


def test_plan_on_a_laptop_plans_for_the_cpu(tiny_dataset: Path, roots: Roots, no_gpu: None) -> None:
    result = _plan(roots, "--no-preprocess")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "device: cpu (no GPU found)"
    plans = Plans.read(_plans_file(roots))
    assert plans.device == "cpu"
    assert plans.memory_budget_gb == 2.0  # the CPU budget, not the 8 GB of a GPU


@pytest.mark.skipif(
    device_module.gpu_driver_present() or device_module.apple_silicon(),
    reason="with a GPU driver present, plan asks torch whether it can use the GPU",
)
def test_plan_without_gpu_does_not_import_torch(tiny_dataset: Path, roots: Roots) -> None:
    code = (
        "import sys\nfrom tumorseg.cli import app\nfrom typer.testing import CliRunner\n"
        f"r = CliRunner().invoke(app, ['plan', '1', '-c', '3d_fullres', *{_roots(roots)!r}])\n"
        "assert r.exit_code == 0, r.output\nprint(r.output.splitlines()[0], 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "device: cpu (no GPU found) False", out.stderr
