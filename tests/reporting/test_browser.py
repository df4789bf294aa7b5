"""The report in a real browser: headless Chromium loads the page, every image decodes, and it
renders to a PNG. Skipped when no Chromium is installed (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.inference.tiny_run import GEOMETRY
from tests.reporting.conftest import CASES, Predicted
from tumorseg.data.io import write_image
from tumorseg.reporting.report import write_report

pytestmark = pytest.mark.slow
T = "2024-05-01 14:03:07"


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium installed (Debian package: chromium)")


def _run(browser: str, page: Path, *options: str) -> subprocess.CompletedProcess[str]:
    # No sandbox: test machines and containers often run as root or without user namespaces.
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--virtual-time-budget=10000", *options, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _loaded(browser: str, page: Path) -> tuple[int, int]:
    """``(decoded, total)`` images as the page's own check counted them once loaded."""
    dom = _run(browser, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom.stdout)
    assert match, "the page's load check did not run: " + dom.stdout[:500]
    return int(match.group(1)), int(match.group(2))


def test_every_image_of_the_page_loads_and_it_renders(predicted: Predicted) -> None:
    browser = _browser()
    fold = predicted.run / "fold_0"
    lines = [f"{T}: training default 3d_fullres fold 0: 2 train / 1 val cases"]
    lines += [
        f"{T}: epoch {e}: lr 0.01000, train loss {-0.1 * e:.4f}, val loss {-0.05 * e:.4f}, "
        f"pseudo Dice WT {0.1 * e:.4f} TC 0.1000 ET 0.0500, EMA {0.05 * e:.4f}, 1.0 s"
        for e in range(6)
    ]
    (fold / "log.txt").write_text("\n".join(lines) + "\n")
    (predicted.predictions / "uncertainty").mkdir()
    values = np.random.default_rng(0).random(GEOMETRY.shape).astype(np.float32)
    write_image(predicted.predictions / "uncertainty" / "case_a_WT.nii.gz", values, GEOMETRY)
    page = write_report(
        predicted.predictions, predicted.root / "page.html", reference=predicted.references
    )
    expected = len(CASES) * 3 * 2 * 4 + 3 + 1  # overlays, case_a's WT map, fold 0's curves
    assert page.read_text().count("data:image/png;base64,") == expected
    assert _loaded(browser, page) == (expected, expected)
    shot = predicted.root / "page.png"
    rendered = _run(browser, page, f"--screenshot={shot}", "--window-size=1280,3000")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.size == (1280, 3000)
        pixels = np.asarray(picture.convert("L"))
    # Not a blank page: the black panel grids and the white page are both there.
    assert (pixels < 20).mean() > 0.05
    assert (pixels > 235).mean() > 0.2


def test_the_page_names_an_image_that_does_not_decode(predicted: Predicted) -> None:
    """The check itself: a damaged image is counted and named in the banner."""
    browser = _browser()
    page = write_report(predicted.predictions, predicted.root / "page.html", max_cases=1)
    text = page.read_text()
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    damaged = predicted.root / "damaged.html"
    damaged.write_text(text[:start] + "AAAA" + text[start + 200 :])
    assert _loaded(browser, damaged) == (11, 12)
    dom = _run(browser, damaged, "--dump-dom").stdout
    assert "1 of 12 images could not be shown: predictions case_a axial · prediction T1" in dom
