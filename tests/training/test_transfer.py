from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tumorseg.errors import TumorsegError
from tumorseg.networks import UNet
from tumorseg.planning.plans import NetworkTopology
from tumorseg.training.transfer import load_pretrained

TOPOLOGY = NetworkTopology(
    network="unet",
    features_per_stage=(4, 8, 16),
    kernel_sizes=((3, 3), (3, 3), (3, 3)),
    strides=((1, 1), (2, 2), (2, 2)),
)


def _save(path: Path, network: torch.nn.Module, wrap: bool) -> Path:
    state = network.state_dict()
    torch.save({"network": state, "epoch": torch.tensor(3)} if wrap else state, path)
    return path


@pytest.mark.parametrize("wrap", [True, False], ids=["checkpoint", "state_dict"])
def test_matching_weights_load_and_head_is_skipped(tmp_path: Path, wrap: bool) -> None:
    torch.manual_seed(0)
    source = UNet(4, 3, TOPOLOGY, 2)
    path = _save(tmp_path / "checkpoint_final.pt", source, wrap)
    torch.manual_seed(1)
    # Two outputs instead of three: the 1x1 heads differ in shape, everything else matches.
    target = UNet(4, 2, TOPOLOGY, 2)
    report = load_pretrained(target, path)
    heads = {n for n in target.state_dict() if n.startswith("seg_heads.")}
    assert set(report.skipped) == heads
    assert report.missing == ()
    assert report.unused == ()
    assert len(report.loaded) == len(target.state_dict()) - len(heads)
    first_conv = "encoder.0.0.conv.weight"
    assert torch.equal(target.state_dict()[first_conv], source.state_dict()[first_conv])
    assert not torch.equal(target.seg_heads[0].weight, source.seg_heads[0].weight[:2])
    assert "skipped 4" in report.summary()


def test_wrapper_prefix_and_extra_keys(tmp_path: Path) -> None:
    source = UNet(1, 1, TOPOLOGY, 2)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.extra.weight"] = torch.zeros(1)
    torch.save({"network": state}, tmp_path / "ddp.pt")
    report = load_pretrained(UNet(1, 1, TOPOLOGY, 2), tmp_path / "ddp.pt")
    assert report.unused == ("extra.weight",)
    assert report.skipped == ()


def test_corrupt_checkpoint_is_one_line_error(tmp_path: Path) -> None:
    path = _save(tmp_path / "broken.pt", UNet(1, 1, TOPOLOGY, 2), wrap=True)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TumorsegError, match=r"broken.pt: is not a readable checkpoint") as info:
        load_pretrained(UNet(1, 1, TOPOLOGY, 2), path)
    assert "\n" not in str(info.value)
    with pytest.raises(TumorsegError, match=r"missing.pt: checkpoint not found"):
        load_pretrained(UNet(1, 1, TOPOLOGY, 2), tmp_path / "missing.pt")


def test_foreign_checkpoint_is_rejected(tmp_path: Path) -> None:
    torch.save({"weights": [1, 2]}, tmp_path / "other.pt")
    with pytest.raises(TumorsegError, match=r"other.pt: holds no network weights"):
        load_pretrained(UNet(1, 1, TOPOLOGY, 2), tmp_path / "other.pt")
    torch.save({"network": {"x.weight": torch.zeros(2)}}, tmp_path / "unrelated.pt")
    with pytest.raises(TumorsegError, match=r"unrelated.pt: shares no parameter"):
        load_pretrained(UNet(1, 1, TOPOLOGY, 2), tmp_path / "unrelated.pt")
