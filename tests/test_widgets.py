"""Widget panels: the pure functions under them, the wiring (click/slide -> one replaced output), ipywidgets 7.7 and 8.

The panels must work on Colab, which ships ipywidgets 7.7.x, and with ipywidgets 8 elsewhere.  This file runs with
whatever ipywidgets the environment has; ``test_widgets_under_ipywidgets_7`` installs 7.7.5 into a private
``pip install --target`` folder and re-runs this file in a subprocess with that folder first on ``PYTHONPATH``.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cvaelib import KitError, PromptError
from cvaelib.interpolate import decode, encode
from tiny_models import REPO, eval_images, tiny_model

ipywidgets = pytest.importorskip("ipywidgets")
from cvaelib.viz.widgets import (explorer_panel, explorer_png, images_png, interpolation_panel,  # noqa: E402
                                 interpolation_png, prompt_panel, prompt_png)

IPYW7 = "7.7.5"


def _gray(img) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.array(img.convert("L")))


def _png(data: bytes):
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def _outputs(out) -> list[dict]:
    return list(out.outputs)


def _image_of(out):
    items = _outputs(out)
    assert len(items) == 1 and items[0]["output_type"] == "display_data", items
    return _png(base64.b64decode(items[0]["data"]["image/png"]))


@pytest.fixture(scope="module")
def fashion(data_root):
    return {"cvae": tiny_model("cvae", "fashion-mnist", data_root), "vae": tiny_model("vae", "fashion-mnist", data_root)}


def test_expected_ipywidgets_version():
    want = os.environ.get("CVAELIB_EXPECT_IPYWIDGETS")
    if want:
        assert ipywidgets.__version__ == want
    assert int(ipywidgets.__version__.split(".")[0]) in (7, 8)


def test_images_png_is_a_scaled_grid():
    x = torch.zeros(6, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    img = _png(images_png(x, ncols=3, scale=2, pad=2))
    assert img.size == (2 * (3 * 30 + 2), 2 * (2 * 30 + 2))
    arr = _gray(img)
    assert int(arr[2 * (2 + 14), 2 * (2 + 14)]) == 255 and int(arr[2 * (2 + 3), 2 * (2 + 3)]) == 0
    with pytest.raises(KitError):
        images_png(torch.zeros(0, 1, 28, 28))


def test_prompt_png_draws_one_row_per_class(fashion):
    img = _png(prompt_png(fashion["cvae"], "sneakers and a coat", n=4, seed=0))
    assert img.size[0] > img.size[1] > 50  # 4 wide, 2 rows, titled
    with pytest.raises(PromptError, match="known classes"):
        prompt_png(fashion["cvae"], "a blue car")
    with pytest.raises(KitError, match=r"--prompt does not apply to this vae model \(unconditional\)"):
        prompt_png(fashion["vae"], "sneakers")


def test_explorer_png_decodes_the_slider_code(fashion):
    model = fashion["cvae"]
    a = explorer_png(model, [0.0, 0.0], c=7, scale=1)
    z = torch.zeros(1, model.latent_dim)
    want = decode(model, z, [7])[0, 0].mul(255).round().byte()
    got = _gray(_png(a))  # one image: no grid padding
    assert got.shape == (28, 28)
    assert (got.int() - want.int()).abs().max() <= 1
    assert explorer_png(model, [2.5, -2.5], c=7) != explorer_png(model, [0.0, 0.0], c=7)
    assert explorer_png(model, [0.0], c=8) != explorer_png(model, [0.0], c=7)
    with pytest.raises(KitError, match="latent dimensions"):
        explorer_png(model, [0.0] * (model.latent_dim + 1), c=0)


def test_interpolation_png_end_points(fashion, data_root):
    model = fashion["vae"]
    x, _, _ = eval_images("fashion-mnist", data_root, 2)
    z = encode(model, x)
    left = _png(interpolation_png(model, z[0], z[1], 0.0, "lerp", scale=1))
    arr = _gray(left)
    # frames 0 and 1 are both x0's decoding when t = 0
    assert torch.equal(arr[4:32, 4:32], arr[4:32, 36:64])
    assert interpolation_png(model, z[0], z[1], 0.5, "slerp") != interpolation_png(model, z[0], z[1], 0.5, "lerp")
    with pytest.raises(KitError, match="between 0 and 1"):
        interpolation_png(model, z[0], z[1], 1.5)


def test_prompt_panel_click_replaces_one_output(fashion):
    panel = prompt_panel(fashion["cvae"], n=3)
    assert isinstance(panel.ui, ipywidgets.VBox) and panel["out"].outputs == ()
    panel["text"].value = "two handbags and a dress"
    panel["button"].click()
    first = _image_of(panel["out"])
    panel["seed"].value = 5
    panel["button"].click()  # a second click replaces, never stacks
    second = _image_of(panel["out"])
    assert first.size == second.size and first.tobytes() != second.tobytes()
    panel["text"].value = "sneekers"
    panel["button"].click()
    (item,) = _outputs(panel["out"])
    assert item["output_type"] == "stream" and item["text"].startswith("error: no class found")
    assert "'sneaker'" in item["text"]


def test_explorer_panel_redraws_on_slider_and_class(fashion):
    panel = explorer_panel(fashion["cvae"], dims=3)
    assert len(panel["sliders"]) == 3 and panel["class"] is not None
    start = _image_of(panel["out"]).tobytes()
    panel["sliders"][0].value = 2.0
    moved = _image_of(panel["out"]).tobytes()
    panel["class"].value = 8
    bag = _image_of(panel["out"]).tobytes()
    assert len({start, moved, bag}) == 3
    panel["reset"].click()
    assert all(s.value == 0.0 for s in panel["sliders"])
    assert explorer_panel(fashion["vae"], dims=2)["class"] is None  # unconditional: no class picker


def test_interpolation_panel_follows_the_slider(fashion, data_root):
    x, y, _ = eval_images("fashion-mnist", data_root, 2)
    panel = interpolation_panel(fashion["cvae"], x[0], x[1], int(y[0]), int(y[1]))
    mid = _image_of(panel["out"]).tobytes()
    panel["t"].value = 1.0
    end = _image_of(panel["out"]).tobytes()
    panel["method"].value = "lerp"
    assert mid != end and len(_outputs(panel["out"])) == 1


def _ipywidgets7_dir() -> Path:
    """A private folder holding ipywidgets 7.7.5: ``$CVAELIB_IPYWIDGETS7_DIR`` (CI prepares it), else installed once
    with pip (``--no-deps --target``) from the configured index into ``.pytest_cache``."""
    target = Path(os.environ.get("CVAELIB_IPYWIDGETS7_DIR", REPO / ".pytest_cache" / f"ipywidgets-{IPYW7}"))
    if (target / "ipywidgets").is_dir():
        return target
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), f"ipywidgets=={IPYW7}", "ipython_genutils"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not (target / "ipywidgets").is_dir():
        pytest.skip(f"could not pip install ipywidgets=={IPYW7} (offline?): {proc.stderr.strip()[-200:]}")
    return target


@pytest.mark.skipif(os.environ.get("CVAELIB_EXPECT_IPYWIDGETS") is not None, reason="already the 7.x re-run")
def test_widgets_under_ipywidgets_7(data_root):
    """Colab's ipywidgets 7.7.x: the same tests pass with it first on the path."""
    target = _ipywidgets7_dir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
           "CVAELIB_EXPECT_IPYWIDGETS": IPYW7, "CVAELIB_DATA": str(data_root)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           str(Path(__file__)), "-k", "not under_ipywidgets_7"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], proc.stdout[-500:]
