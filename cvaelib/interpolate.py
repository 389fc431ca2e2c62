"""Walks through latent space (lesson 04): image -> image, class -> class, one dimension at a time, style transfer.

Everything here is a pure tensor function: codes in, codes or images (float ``[N, C, H, W]`` in [0, 1], on CPU)
out.  Plots and widgets call these; tests check them on trained models.

* :func:`lerp` / :func:`slerp` - straight line vs great circle between two codes.  Under a N(0, I) prior most
  probability mass sits near the sphere of radius sqrt(d), and the midpoint of a straight line between two typical
  codes falls inside it (its norm shrinks by up to 1/sqrt(2)); the spherical path keeps the norm (White 2016,
  "Sampling Generative Networks", https://arxiv.org/abs/1609.04468).
* :func:`interpolate_images` - encode two images (posterior means), walk between the codes, decode.
* :func:`interpolate_classes` - a CVAE with a *fixed* z, decoded with a condition that slides from one class to
  another (the class embedding is mixed linearly).
* :func:`traverse` - sweep one latent dimension, keep the others fixed.
* :func:`style_transfer` - encode an image *with its class*, decode the same z with every class: the CVAE's z
  holds the style (slant, stroke width, ...), the condition the content.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .conditioning.kinds import check_condition, describe
from .data.images import as_images
from .errors import KitError

METHODS = ("lerp", "slerp")


def _weights(steps: int, like: Tensor) -> Tensor:
    if int(steps) < 2:
        raise KitError(f"steps must be at least 2 (the two end points), got {steps}")
    return torch.linspace(0.0, 1.0, int(steps), dtype=like.dtype if like.is_floating_point() else torch.float32,
                          device=like.device)


def blend(z0: Tensor, z1: Tensor, t: Tensor | Sequence[float] | float, method: str = "slerp",
          eps: float = 1e-6) -> Tensor:
    """Points at fractions ``t`` (0 = ``z0``, 1 = ``z1``) along a straight or spherical path: ``[len(t), *z0.shape]``.

    ``"slerp"`` follows the great circle through the two directions and interpolates the norms linearly; it falls
    back to the straight line where the codes are (anti-)parallel or zero.
    """
    _check_pair(z0, z1)
    if method not in METHODS:
        raise KitError(f"unknown interpolation {method!r}; choose one of: {', '.join(METHODS)}")
    t = torch.as_tensor(t, dtype=z0.dtype if z0.is_floating_point() else torch.float32, device=z0.device)
    t = t.reshape(-1).view(-1, *([1] * z0.dim()))
    z0, z1 = z0.to(t.dtype), z1.to(t.dtype)
    straight = (1 - t) * z0 + t * z1
    if method == "lerp":
        return straight
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    u0, u1 = z0 / n0.clamp_min(eps), z1 / n1.clamp_min(eps)
    omega = torch.acos((u0 * u1).sum(-1, keepdim=True).clamp(-1 + eps, 1 - eps))
    so = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / so.clamp_min(eps)
    out = direction * ((1 - t) * n0 + t * n1)
    degenerate = (so < 1e-4) | (n0 < eps) | (n1 < eps)
    return torch.where(degenerate, straight, out)


def lerp(z0: Tensor, z1: Tensor, steps: int = 8) -> Tensor:
    """Straight-line path: ``[steps, *z0.shape]`` from ``z0`` (first row) to ``z1`` (last row)."""
    return blend(z0, z1, _weights(steps, z0), "lerp")


def slerp(z0: Tensor, z1: Tensor, steps: int = 8) -> Tensor:
    """Spherical path along the great circle through ``z0`` and ``z1`` (norms interpolated): ``[steps, *z0.shape]``."""
    return blend(z0, z1, _weights(steps, z0), "slerp")


def _check_pair(z0: Tensor, z1: Tensor) -> None:
    if z0.shape != z1.shape:
        raise KitError(f"the two codes differ in shape ({list(z0.shape)} vs {list(z1.shape)}); encode both with "
                       f"the same model")


def path(z0: Tensor, z1: Tensor, steps: int = 8, method: str = "slerp") -> Tensor:
    """:func:`lerp` or :func:`slerp` by name: ``steps`` evenly spaced points from ``z0`` to ``z1``."""
    return blend(z0, z1, _weights(steps, z0), method)


# --- model helpers ---------------------------------------------------------------------------------------------
def _device(model) -> torch.device:
    return next(model.parameters()).device


def _labels(model, c, n: int) -> Tensor | None:
    """The conditions of ``n`` items on the model's device: class ids ``[n]`` (one id is repeated), vectors
    ``[n, D]`` (one vector is repeated), or None for an unconditional model; one-line errors otherwise."""
    if model.condition is None:
        if c is not None:
            raise KitError(f"this {model.name} model is unconditional: pass no class")
        return None
    if c is None:
        what = "the class of each image" if model.condition == "label" else "the condition of each image"
        raise KitError(f"this {model.name} model is {describe(model.condition)}: pass {what}")
    if model.condition == "label":
        c = torch.as_tensor(c).long().reshape(-1)
        c = c.expand(n) if c.numel() == 1 else c
    else:
        c = torch.as_tensor(c).float()
        c = c.reshape(1, -1).expand(n, -1) if c.dim() == 1 else c
    was = model.training
    model.eval()  # validate as a user call (class ids in range)
    try:
        check_condition(model, c, n)
    finally:
        model.train(was)
    return c.to(_device(model))


def _images(model, x: Tensor) -> Tensor:
    return as_images(x, model.image_shape).to(_device(model))


@torch.no_grad()
def encode(model, x: Tensor, c=None) -> Tensor:
    """Deterministic codes ``[N, D]`` (posterior means for VAEs) of images ``x`` (with classes ``c`` for CVAEs)."""
    x = _images(model, x)
    was = model.training
    model.eval()
    z = model.embed(x, _labels(model, c, len(x)))
    model.train(was)
    return z


@torch.no_grad()
def decode(model, z: Tensor, c=None) -> Tensor:
    """Images in [0, 1] (on CPU) for codes ``z`` ``[N, D]`` (and classes ``c`` for CVAEs)."""
    z = torch.as_tensor(z).float().to(_device(model))
    if z.dim() != 2 or z.shape[1] != model.latent_dim:
        raise KitError(f"codes must be [N, {model.latent_dim}], got {list(z.shape)}")
    was = model.training
    model.eval()
    out = torch.sigmoid(model.decode(z, _labels(model, c, len(z)))).cpu()
    model.train(was)
    return out


@torch.no_grad()
def interpolate_images(model, x0: Tensor, x1: Tensor, steps: int = 8, method: str = "slerp", c0=None,
                       c1=None) -> Tensor:
    """Encode ``x0`` and ``x1`` (single images ``[C, H, W]``), walk between the codes, decode: ``[steps, C, H, W]``.

    For a CVAE give the classes ``c0``/``c1``; when they differ the condition slides along with z
    (as in :func:`interpolate_classes`), so the first and last images are the reconstructions of ``x0`` and ``x1``.
    """
    z0 = encode(model, x0, None if c0 is None else [int(c0)])[0]
    z1 = encode(model, x1, None if c1 is None else [int(c1)])[0]
    return decode_path(model, z0, z1, _weights(steps, z0), method, c0, c1)


@torch.no_grad()
def decode_path(model, z0: Tensor, z1: Tensor, t: Tensor | Sequence[float], method: str = "slerp", c0=None,
                c1=None) -> Tensor:
    """Decode the points at fractions ``t`` between codes ``z0`` and ``z1`` ``[D]``: ``[len(t), C, H, W]``.

    For a CVAE the condition moves with z from class ``c0`` to ``c1`` (both needed; equal for one class).
    """
    zs = blend(torch.as_tensor(z0).float().reshape(-1), torch.as_tensor(z1).float().reshape(-1), t, method)
    if model.condition is None:
        if c0 is not None or c1 is not None:
            raise KitError(f"this {model.name} model is unconditional: pass no class")
        return decode(model, zs)
    if c0 is None or c1 is None:
        raise KitError(f"this {model.name} model is class-conditional: pass the classes c0 and c1")
    return _decode_mixed(model, zs, int(c0), int(c1), torch.as_tensor(t, dtype=torch.float32).reshape(-1))


@torch.no_grad()
def interpolate_classes(model, z: Tensor, c0: int, c1: int, steps: int = 8) -> Tensor:
    """A CVAE's fixed code ``z`` ``[D]`` decoded while the condition moves from class ``c0`` to ``c1``.

    The condition's vector (learned embedding or one-hot) is mixed linearly, ``(1 - t) e(c0) + t e(c1)``: the
    in-between images show what the decoder does with a class it never saw.  Returns ``[steps, C, H, W]``.
    """
    if model.condition != "label":
        raise KitError(f"class interpolation needs a class-conditional model (cvae); this one is {model.name!r}")
    z = torch.as_tensor(z).float().reshape(-1)
    _weights(steps, z)  # validates steps
    if z.numel() != model.latent_dim:
        raise KitError(f"z must have {model.latent_dim} numbers for this model, got {z.numel()}")
    return _decode_mixed(model, z.to(_device(model)).expand(int(steps), -1), int(c0), int(c1), _weights(steps, z))


@torch.no_grad()
def _decode_mixed(model, zs: Tensor, c0: int, c1: int, t: Tensor) -> Tensor:
    ids = _labels(model, [c0, c1], 2)
    e = model.condition_vector(ids)
    t = t.to(device=e.device, dtype=e.dtype).view(-1, 1)
    v = (1 - t) * e[0] + t * e[1]
    was = model.training
    model.eval()
    out = torch.sigmoid(model.decode_vector(zs.to(e.device).float(), v)).cpu()
    model.train(was)
    return out


@torch.no_grad()
def traverse(model, z: Tensor, dims: Sequence[int] | int | None = None, values: Sequence[float] | Tensor | None = None,
             c: int | None = None, steps: int = 7, span: float = 3.0) -> Tensor:
    """Latent traversal grid: for each dimension in ``dims``, sweep it over ``values`` with the others fixed at ``z``.

    Args:
        z: the starting code ``[D]`` (e.g. an encoded image, or zeros = the prior's centre).
        dims: dimensions to sweep (default: all); one row per dimension.
        values: the values to set (default ``linspace(-span, span, steps)``, i.e. +/- 3 prior standard deviations).
        c: the class for a CVAE.

    Returns:
        ``[len(dims) * len(values), C, H, W]``, row-major (row = dimension).
    """
    z = torch.as_tensor(z).float().reshape(-1)
    if z.numel() != model.latent_dim:
        raise KitError(f"z must have {model.latent_dim} numbers for this model, got {z.numel()}")
    dims = list(range(model.latent_dim)) if dims is None else ([dims] if isinstance(dims, int) else list(dims))
    bad = [d for d in dims if not 0 <= int(d) < model.latent_dim]
    if bad:
        raise KitError(f"latent dimensions must be in 0..{model.latent_dim - 1}, got {bad}")
    vals = torch.linspace(-span, span, int(steps)) if values is None else torch.as_tensor(values, dtype=torch.float32)
    grid = z.repeat(len(dims) * len(vals), 1)
    for r, d in enumerate(dims):
        grid[r * len(vals):(r + 1) * len(vals), int(d)] = vals
    return decode(model, grid, None if c is None else [int(c)])


@torch.no_grad()
def style_transfer(model, x: Tensor, c, targets: Sequence[int] | None = None) -> Tensor:
    """Encode images ``x`` ``[N, C, H, W]`` with their classes ``c``, decode each code with every target class.

    Returns ``[N, len(targets), C, H, W]`` (default targets: all classes): row ``i`` is image ``i``'s handwriting
    (or cut, for clothes) written as each class.
    """
    if model.condition != "label":
        raise KitError(f"style transfer needs a class-conditional model (cvae); this one is {model.name!r}")
    z = encode(model, x, c)
    targets = list(range(model.num_classes)) if targets is None else [int(t) for t in targets]
    n, k = len(z), len(targets)
    images = decode(model, z.repeat_interleave(k, 0), torch.tensor(targets).repeat(n))
    return images.view(n, k, *images.shape[1:])
