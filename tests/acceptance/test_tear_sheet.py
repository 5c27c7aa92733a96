"""The tear sheet opened in a real headless Chromium: the screenshot shows the plots, not a blank page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tradedb
from tests.conftest import TestDatabase, run_cli
from tradedb.strategies import Param
from tradedb.strategies.report import COLORS, DRAWDOWN_COLOR

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, png: Path) -> Image.Image:
    assert BROWSER is not None
    result = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,2400",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert png.exists(), result.stderr
    return Image.open(png).convert("RGB")


def pixels_near(image: Image.Image, color: str, tolerance: int = 40) -> int:
    """How many pixels are within ``tolerance`` (per channel) of ``color``."""
    target = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
    data = np.asarray(image).astype(np.int32)
    return int((np.abs(data - target).max(axis=2) <= tolerance).sum())


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (make test installs it where it may)")
def test_the_tear_sheet_renders_its_plots_in_a_real_browser(db: TestDatabase, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ts = pd.date_range("2021-01-04", periods=700, freq="B", tz="UTC")
    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.strategies.register("tear_sheet", [Param("k", "int", default=1)])
        runs = [
            handle.backtests.record(
                "tear_sheet",
                parameters={"k": k},
                equity=pd.DataFrame({"ts": ts, "equity": 1e5 * np.cumprod(1 + rng.normal(0.0004, 0.012, 700))}),
            ).run_id
            for k in (1, 2)
        ]
    page = tmp_path / "sheet.html"
    result = run_cli("backtests", "report", str(runs[0]), "--html", str(page), "--compare", str(runs[1]), env=db.env())
    assert result.returncode == 0, result.stderr
    assert re.search(r"wrote .*sheet\.html", result.stdout)
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "<script" not in text  # nothing to run, nothing to fetch

    image = screenshot(page, tmp_path / "sheet.png")
    assert image.size[0] >= 1000
    # Not blank: the equity lines of both runs, the drawdown area and the heatmap's cells are all drawn.
    assert pixels_near(image, COLORS[0], 10) > 2000, "the main equity line (and rolling Sharpe) is missing"
    assert pixels_near(image, COLORS[1], 10) > 500, "the overlaid run is missing"
    assert pixels_near(image, DRAWDOWN_COLOR, 10) > 500, "the drawdown outline is missing"
    # #d62728 at 35 % opacity on white
    assert pixels_near(image, "#f1b3b4", 8) > 5000, "the shaded drawdown area is missing"
    assert pixels_near(image, "#f4f4f4", 0) < image.size[0] * image.size[1] // 2
    distinct = len(np.unique(np.asarray(image).reshape(-1, 3), axis=0))
    assert distinct > 200, f"only {distinct} colours: the page looks blank"
