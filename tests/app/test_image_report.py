"""Tests of ganfast.app.image_report (and the one GIF writer, ganfast.app.report.write_gif): sample grids, PNG and GIF files, the image run report."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_drawn
from ganfast.app import image_report, report


def test_grey_grid_layout_and_upscaling():
    x = torch.zeros(5, 1, 8, 8)
    x[1] = 1.0
    x[2, 0, 0, 0] = 0.5
    g = image_report.make_grid(x, nrow=3, pad=2)  # 8x8 tiles upscaled 4x to 32x32
    assert g.shape == (2 * 34 + 2, 3 * 34 + 2, 3) and g.dtype == np.uint8
    assert (g[:2] == 255).all() and (g[:, :2] == 255).all()          # padding is white
    assert (g[2:34, 2:34] == 0).all()                                 # tile 0: black
    assert (g[2:34, 36:68] == 255).all()                              # tile 1: white
    assert (g[2:6, 70:74] == 128).all() and (g[6:34, 70:102] == 0).all()  # tile 2: one grey pixel, 4x4
    assert (g[36:68, 70:102] == 255).all()                            # 6th slot empty: background


def test_rgb_grid_range_and_clipping():
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0] = 1.0    # red
    x[0, 1] = -3.0   # clipped to low
    g = image_report.make_grid(x, low=-1.0, high=1.0, pad=0)
    assert g.shape == (32, 32, 3)
    assert (g[..., 0] == 255).all() and (g[..., 1] == 0).all() and (g[..., 2] == 128).all()


@pytest.mark.parametrize("images, match", [
    (torch.zeros(2, 2, 8, 8), r"\(N, 1 or 3, H, W\)"),
    (torch.zeros(0, 1, 8, 8), "N >= 1"),
    (torch.zeros(8, 8), r"got shape \(8, 8\)"),
])
def test_grid_errors(images, match):
    with pytest.raises(ValueError, match=match):
        image_report.make_grid(images)


def test_png_and_gif(tmp_path):
    grids = [image_report.make_grid(torch.full((4, 1, 8, 8), v)) for v in (0.0, 0.5, 1.0)]
    png = image_report.save_png(tmp_path / "a.png", grids[1])
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), grids[1])
    gif = report.write_gif(tmp_path / "t.gif", grids, fps=4, max_frames=100, hold_last=1.0)
    with Image.open(gif) as im:
        assert im.n_frames == 3
        durations = []
        for k in range(3):
            im.seek(k)
            durations.append(im.info["duration"])
    assert durations == [250, 250, 1000]  # the last grid is held a second
    thinned = report.write_gif(tmp_path / "u.gif", grids * 5, fps=4, max_frames=4)
    with Image.open(thinned) as im:
        assert im.n_frames == 4
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="at least one image"):
        report.write_gif(tmp_path / "e.gif", [], fps=4, max_frames=10)


def test_write_image_report(tmp_path):
    rows = [{"epoch": 1, "iteration": i, "d_loss_real": 0.5, "d_loss_fake": 0.4, "g_loss": 1.0 + i,
             "d_real": 0.6, "d_fake": 0.3} for i in (1, 2)]
    grids = [image_report.make_grid(torch.rand(4, 1, 8, 8))]
    out = image_report.write_image_report(tmp_path, rows=rows, grids=grids, summary={"name": "x", "v": float("nan")})
    assert out["name"] == "x"
    assert json.loads((tmp_path / "summary.json").read_text()) == {"name": "x", "v": None}
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "epoch,iteration,d_loss_real,d_loss_fake,g_loss,d_real,d_fake"
    assert_drawn(tmp_path / "losses.png")
    assert_drawn(tmp_path / "training.gif")
    plain = tmp_path / "noplots"
    image_report.write_image_report(plain, rows=rows, grids=grids, summary={}, plots=False)
    assert sorted(p.name for p in plain.iterdir()) == ["metrics.csv", "summary.json"]
