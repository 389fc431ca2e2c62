"""Interactive panels for lesson 04 (ipywidgets core widgets only; works with ipywidgets 7.7 on Colab and 8.x).

Each panel is thin wiring: controls -> a pure function that returns PNG bytes -> one ``Output`` that is replaced,
never appended to (no ``interact`` re-render stacking).  The pure functions (:func:`prompt_png`,
:func:`explorer_png`, :func:`interpolation_png`) are what the tests check.

* :func:`prompt_panel` - a text box and a button: "two sneakers and a bag" -> a grid of samples per class;
* :func:`explorer_panel` - a class picker and sliders for the first latent dimensions;
* :func:`interpolation_panel` - one slider that walks from one image's code to another's.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import KitError


# --- pure functions ----------------------------------------------------------------------------------------------
def images_png(images: Tensor, ncols: int | None = None, scale: int = 3, pad: int = 2) -> bytes:
    """A PNG (bytes) of images ``[N, C, H, W]`` in [0, 1] tiled ``ncols`` wide, each pixel ``scale`` x ``scale``."""
    from PIL import Image
    from torchvision.utils import make_grid

    if images.dim() != 4 or len(images) == 0:
        raise KitError(f"images must be a non-empty [N, C, H, W] tensor, got {list(images.shape)}")
    grid = make_grid(images.detach().float().clamp(0, 1).cpu(), nrow=ncols or len(images), padding=pad,
                     pad_value=1.0)
    if images.shape[1] == 1:
        grid = grid[:1]
    arr = (grid.mul(255).round().byte().permute(1, 2, 0).squeeze(-1).numpy())
    img = Image.fromarray(arr)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def figure_png(fig, dpi: int = 80) -> bytes:
    """A matplotlib figure as PNG bytes (closes it, so notebooks do not show it twice)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def prompt_png(model, text: str, n: int = 8, seed: int = 0, class_names: Sequence[str] | None = None,
               source: str | None = None) -> bytes:
    """PNG of what the model's conditioning draws for ``text``: ``n`` samples per class named in it (one labelled
    row per class) for a class-conditional model, ``n`` images for the text otherwise (attribute words, or any text
    through a CLIP model's bridge; ``source``: its run folder, where a TinyCLIP is kept).

    Raises:
        PromptError: nothing in ``text`` the model understands (the message lists what it knows); KitError: an
        unconditional model.
    """
    from ..conditioning import Request, conditioning_for
    from .plots import show_grid

    kwargs = {"class_names": list(class_names)} if class_names is not None and model.condition == "label" else {}
    drawn = conditioning_for(model, source, **kwargs).generate(Request(n=n, seed=seed, prompt=text))
    fig = show_grid(drawn.images, ncols=drawn.ncols or min(len(drawn.images), 8), row_labels=drawn.row_labels,
                    title=f"“{text}”")
    return figure_png(fig)


def explorer_png(model, values: Sequence[float], c: int | None = None, base: Tensor | None = None,
                 scale: int = 6) -> bytes:
    """PNG of the image decoded from a code whose first ``len(values)`` dimensions are ``values``.

    The other dimensions come from ``base`` (default zeros, the prior's centre); ``c`` is the class for a CVAE.
    """
    from ..interpolate import decode

    z = torch.zeros(model.latent_dim) if base is None else torch.as_tensor(base, dtype=torch.float32).clone()
    if len(values) > model.latent_dim:
        raise KitError(f"{len(values)} slider values but the model has {model.latent_dim} latent dimensions")
    z[:len(values)] = torch.as_tensor(list(values), dtype=torch.float32)
    return images_png(decode(model, z[None], None if c is None else [int(c)]), scale=scale)


def interpolation_png(model, z0: Tensor, z1: Tensor, t: float, method: str = "slerp", c0: int | None = None,
                      c1: int | None = None, scale: int = 4) -> bytes:
    """PNG of three images: the decoded end points and the point at fraction ``t`` (0..1) between them."""
    from ..interpolate import decode_path

    if not 0.0 <= float(t) <= 1.0:
        raise KitError(f"t must be between 0 and 1, got {t}")
    images = decode_path(model, z0, z1, torch.tensor([0.0, float(t), 1.0]), method, c0, c1)
    return images_png(images, scale=scale, pad=4)


# --- thin widget wiring ------------------------------------------------------------------------------------------
def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def show_png(out, png: bytes | None = None, text: str | None = None) -> None:
    """Replace what ``out`` (an ``ipywidgets.Output``) shows with one PNG or one line of text."""
    if _in_kernel():
        # The capture path: the only one every front end (JupyterLab, Notebook 7, Colab, VS Code) renders.
        from IPython.display import Image, clear_output, display

        with out:
            clear_output(wait=True)
            if png is not None:
                display(Image(data=png, format="png"))
            if text is not None:
                print(text)
        return
    # No kernel (tests, scripts): set the synced outputs directly, in the same shape a kernel would produce.
    items: list[dict[str, Any]] = []
    if png is not None:
        items.append({"output_type": "display_data", "metadata": {},
                      "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<image>"}})
    if text is not None:
        items.append({"output_type": "stream", "name": "stdout", "text": text + "\n"})
    out.outputs = tuple(items)


@dataclass
class Panel:
    """A widget panel: ``ui`` is what Jupyter displays; ``controls`` names its parts (tests drive them)."""

    ui: Any
    controls: dict[str, Any] = field(default_factory=dict)

    def _ipython_display_(self) -> None:  # ipywidgets 7 and 8 both display through IPython
        from IPython.display import display

        display(self.ui)

    def __getitem__(self, name: str):
        return self.controls[name]


def _widgets():
    try:
        import ipywidgets
    except ImportError:
        raise KitError("the interactive panels need ipywidgets: pip install 'ipywidgets>=7.7'") from None
    return ipywidgets


def prompt_panel(model, class_names: Sequence[str] | None = None, prompt: str = "", n: int = 8,
                 seed: int = 0) -> Panel:
    """Text box + "Generate" button + seed and N controls -> a grid of what the model draws for the prompt."""
    from ..prompts import model_class_names

    w = _widgets()
    labels = model.condition == "label"
    names = (list(class_names) if class_names is not None else model_class_names(model)) if labels else None
    example = f"{names[min(7, len(names) - 1)]} and {names[0]}" if labels else "a smiling woman with glasses"
    style = {"description_width": "initial"}
    text = w.Text(value=prompt, placeholder=f"e.g. {example}",
                  description="Prompt:", style=style, layout=w.Layout(width="420px"))
    button = w.Button(description="Generate", button_style="primary", icon="magic")
    seed_box = w.IntText(value=seed, description="seed", style=style, layout=w.Layout(width="140px"))
    count = w.IntSlider(value=n, min=1, max=16, description="per class", style=style, continuous_update=False)
    out = w.Output(layout=w.Layout(min_height="80px"))

    def run(_=None) -> None:
        try:
            show_png(out, prompt_png(model, text.value, n=count.value, seed=seed_box.value, class_names=names))
        except KitError as exc:
            show_png(out, text=f"error: {exc}")

    button.on_click(run)
    ui = w.VBox([w.HBox([text, button]), w.HBox([count, seed_box]), out])
    return Panel(ui, {"text": text, "button": button, "seed": seed_box, "n": count, "out": out, "run": run})


def explorer_panel(model, class_names: Sequence[str] | None = None, dims: int = 6, span: float = 3.0,
                   base: Tensor | None = None) -> Panel:
    """A class picker (CVAEs) and sliders for the first ``dims`` latent dimensions -> the decoded image."""
    from ..prompts import model_class_names

    w = _widgets()
    dims = max(1, min(int(dims), model.latent_dim))
    sliders = [w.FloatSlider(value=0.0 if base is None else float(base[i]), min=-span, max=span, step=0.1,
                             description=f"z[{i}]", continuous_update=False) for i in range(dims)]
    picker = None
    if model.condition == "label":
        names = list(class_names) if class_names is not None else model_class_names(model)
        picker = w.Dropdown(options=[(f"{k}: {nm}", k) for k, nm in enumerate(names)], value=0, description="class")
    out = w.Output()

    def redraw(_=None) -> None:
        try:
            show_png(out, explorer_png(model, [s.value for s in sliders], None if picker is None else picker.value,
                                       base=base))
        except KitError as exc:
            show_png(out, text=f"error: {exc}")

    reset = w.Button(description="reset z")

    def on_reset(_=None) -> None:
        for i, s in enumerate(sliders):
            s.value = 0.0 if base is None else float(base[i])
        redraw()

    reset.on_click(on_reset)
    for ctl in sliders + ([picker] if picker is not None else []):
        ctl.observe(redraw, names="value")
    redraw()
    left = w.VBox(([picker] if picker is not None else []) + sliders + [reset])
    return Panel(w.HBox([left, out]), {"class": picker, "sliders": sliders, "reset": reset, "out": out,
                                       "run": redraw})


def interpolation_panel(model, x0: Tensor, x1: Tensor, c0: int | None = None, c1: int | None = None) -> Panel:
    """A slider t in [0, 1] and a lerp/slerp switch -> the image at t between the codes of ``x0`` and ``x1``."""
    from ..interpolate import encode

    w = _widgets()
    z0 = encode(model, x0, None if c0 is None else [int(c0)])[0].cpu()
    z1 = encode(model, x1, None if c1 is None else [int(c1)])[0].cpu()
    t = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t", continuous_update=False)
    method = w.Dropdown(options=["slerp", "lerp"], value="slerp", description="path")
    out = w.Output()

    def redraw(_=None) -> None:
        show_png(out, interpolation_png(model, z0, z1, t.value, method.value, c0, c1))

    t.observe(redraw, names="value")
    method.observe(redraw, names="value")
    redraw()
    return Panel(w.VBox([w.HBox([t, method]), out]), {"t": t, "method": method, "out": out, "run": redraw})
