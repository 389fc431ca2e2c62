"""Latent walks on models trained on real MNIST: lerp/slerp, image -> image, class -> class, traversal, style."""

from __future__ import annotations

import math

import pytest
import torch

from cvaelib import KitError
from cvaelib.classifier import get_classifier, predict
from cvaelib.interpolate import (blend, decode, decode_path, encode, interpolate_classes, interpolate_images, lerp,
                                 slerp, style_transfer, traverse)
from tiny_models import eval_images, tiny_model


# --- pure path maths ---------------------------------------------------------------------------------------------
def test_lerp_end_points_and_midpoint():
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([3.0, 4.0, -2.0])
    p = lerp(a, b, 5)
    assert p.shape == (5, 3)
    assert torch.equal(p[0], a) and torch.allclose(p[-1], b)
    assert torch.allclose(p[2], (a + b) / 2)


def test_slerp_keeps_the_norm_that_lerp_loses():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 64, generator=g)
    b = b * a.norm() / b.norm()  # equal norms, as typical N(0, I) codes nearly have
    s, line = slerp(a, b, 9), lerp(a, b, 9)
    assert torch.allclose(s[0], a, atol=1e-5) and torch.allclose(s[-1], b, atol=1e-5)
    assert torch.allclose(s.norm(dim=1), a.norm().expand(9), rtol=1e-4)
    # the straight line cuts through the inside of the sphere: its midpoint is ~1/sqrt(2) as long
    assert float(line[4].norm() / a.norm()) < 0.8
    # constant angular speed: equal angles between consecutive points
    cos = torch.nn.functional.cosine_similarity(s[:-1], s[1:], dim=1)
    assert torch.allclose(cos, cos[0].expand_as(cos), atol=1e-5)


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_codes():
    a = torch.tensor([1.0, 2.0])
    assert torch.allclose(slerp(a, 3 * a, 4), lerp(a, 3 * a, 4))
    assert torch.allclose(slerp(torch.zeros(2), a, 3), lerp(torch.zeros(2), a, 3))
    assert torch.isfinite(slerp(a, -a, 5)).all()


def test_blend_batches_and_validates():
    z0, z1 = torch.zeros(4, 8), torch.ones(4, 8)
    assert blend(z0, z1, [0.0, 0.25, 1.0], "lerp").shape == (3, 4, 8)
    assert torch.allclose(blend(z0, z1, 0.25, "lerp")[0], torch.full((4, 8), 0.25))
    with pytest.raises(KitError, match="steps must be at least 2"):
        lerp(z0, z1, 1)
    with pytest.raises(KitError, match="differ in shape"):
        slerp(torch.zeros(3), torch.zeros(4))
    with pytest.raises(KitError, match="unknown interpolation"):
        blend(z0, z1, 0.5, "cubic")


# --- on trained models -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist(data_root):
    x, y, names = eval_images("mnist", data_root, 400, seed=3)
    return {"x": x, "y": y, "names": names, "vae": tiny_model("vae", "mnist", data_root),
            "ae": tiny_model("ae", "mnist", data_root), "cvae": tiny_model("cvae", "mnist", data_root),
            "vae_beta4": tiny_model("vae-beta4", "mnist", data_root),
            "judge": get_classifier("mnist", data_root)}


def _first(m, digit: int) -> int:
    return int((m["y"] == digit).nonzero()[0])


@pytest.mark.parametrize("kind", ["vae", "ae"])
@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_image_to_image_walk_goes_from_one_digit_to_the_other(mnist, kind, method):
    model, judge = mnist[kind], mnist["judge"]
    i, j = _first(mnist, 1), _first(mnist, 0)
    frames = interpolate_images(model, mnist["x"][i], mnist["x"][j], steps=9, method=method)
    assert frames.shape == (9, 1, 28, 28) and 0 <= frames.min() and frames.max() <= 1
    recon = decode(model, encode(model, mnist["x"][[i, j]]))
    assert torch.allclose(frames[0], recon[0], atol=1e-5) and torch.allclose(frames[-1], recon[1], atol=1e-5)
    # moving along the path, frames leave the first image and approach the second
    d0 = ((frames - frames[0]) ** 2).mean(dim=(1, 2, 3))
    d1 = ((frames - frames[-1]) ** 2).mean(dim=(1, 2, 3))
    assert d0[2] < d0[4] < d0[6] < d0[8] and d1[0] > d1[4] > d1[8]
    assert predict(judge, frames[[0, -1]]).tolist() == [1, 0]


def test_cvae_image_walk_mixes_the_condition_too(mnist):
    model = mnist["cvae"]
    i, j = _first(mnist, 3), _first(mnist, 8)
    frames = interpolate_images(model, mnist["x"][i], mnist["x"][j], steps=5, c0=3, c1=8)
    recon = decode(model, encode(model, mnist["x"][[i, j]], torch.tensor([3, 8])), torch.tensor([3, 8]))
    assert torch.allclose(frames[0], recon[0], atol=1e-5) and torch.allclose(frames[-1], recon[1], atol=1e-5)
    with pytest.raises(KitError, match="class-conditional"):
        interpolate_images(model, mnist["x"][i], mnist["x"][j], steps=5)


def test_condition_interpolation_with_fixed_z_changes_the_digit(mnist):
    model, judge = mnist["cvae"], mnist["judge"]
    z = torch.zeros(model.latent_dim)
    frames = interpolate_classes(model, z, 1, 7, steps=7)
    assert frames.shape == (7, 1, 28, 28)
    assert torch.allclose(frames[0], decode(model, z[None], [1])[0], atol=1e-5)
    assert torch.allclose(frames[-1], decode(model, z[None], [7])[0], atol=1e-5)
    # over many fixed codes (real images' styles), the walk starts at one digit and ends at the other
    codes = encode(model, mnist["x"][:20], mnist["y"][:20])
    ends = torch.cat([interpolate_classes(model, zc, 0, 1, steps=3)[[0, -1]] for zc in codes])
    correct = (predict(judge, ends) == torch.tensor([0, 1]).repeat(20)).float().mean()
    assert float(correct) >= 0.6, float(correct)  # tiny CVAE, seconds of training; chance is 0.1
    # the in-between frames are in between (pixel distance to the start grows)
    d = ((frames - frames[0]) ** 2).mean(dim=(1, 2, 3))
    assert d[1] < d[3] < d[6]
    # decode_path with fractions gives the same frames
    same = decode_path(model, z, z, torch.linspace(0, 1, 7), "lerp", 1, 7)
    assert torch.allclose(same, frames, atol=1e-6)
    with pytest.raises(KitError, match="class-conditional model"):
        interpolate_classes(mnist["vae"], torch.zeros(8), 1, 7)


def test_traversal_sweeps_one_dimension_at_a_time(mnist):
    model = mnist["vae"]
    z = encode(model, mnist["x"][:1])[0]
    values = [-2.0, 0.0, 2.0]
    grid = traverse(model, z, dims=[0, 3], values=values)
    assert grid.shape == (6, 1, 28, 28)
    direct = decode(model, torch.stack([z.clone().index_fill_(0, torch.tensor([d]), v)
                                        for d in (0, 3) for v in values]))
    assert torch.allclose(grid, direct, atol=1e-6)
    # the lesson's point: an active dimension (codes spread out) changes the picture, a dimension the KL term
    # switched off (codes all ~0) barely does
    strong_kl = mnist["vae_beta4"]
    spread = encode(strong_kl, mnist["x"]).var(0)
    active, dead = int(spread.argmax()), int(spread.argmin())
    sweep = traverse(strong_kl, encode(strong_kl, mnist["x"][:1])[0], dims=[active, dead], values=[-2.0, 2.0])
    change_active = float((sweep[0] - sweep[1]).abs().mean())
    change_dead = float((sweep[2] - sweep[3]).abs().mean())
    assert change_active > 0.02 and change_active > 3 * change_dead, (change_active, change_dead)
    assert traverse(model, z, steps=5).shape == (5 * model.latent_dim, 1, 28, 28)
    cgrid = traverse(mnist["cvae"], torch.zeros(8), dims=1, steps=4, c=5)
    zs = torch.zeros(4, 8)
    zs[:, 1] = torch.linspace(-3, 3, 4)
    assert torch.allclose(cgrid, decode(mnist["cvae"], zs, [5] * 4), atol=1e-6)
    with pytest.raises(KitError, match="latent dimensions must be in"):
        traverse(model, z, dims=[8])
    with pytest.raises(KitError, match="8 numbers"):
        traverse(model, torch.zeros(3))


def test_style_transfer_keeps_the_style_and_changes_the_digit(mnist):
    model, judge = mnist["cvae"], mnist["judge"]
    idx = torch.tensor([_first(mnist, d) for d in (2, 4, 6, 9)])
    x, c = mnist["x"][idx], mnist["y"][idx]
    grid = style_transfer(model, x, c)
    assert grid.shape == (4, 10, 1, 28, 28)
    # decoding with its own class is the reconstruction
    own = grid[torch.arange(4), c]
    assert torch.allclose(own, decode(model, encode(model, x, c), c), atol=1e-5)
    # every column is read as its target digit by an independent classifier (same z, new class)
    pred = predict(judge, grid.flatten(0, 1)).view(4, 10)
    target = torch.arange(10).expand(4, 10)
    acc = float((pred == target).float().mean())
    assert acc >= 0.5, acc  # tiny CVAE trained for seconds (chance 0.1); the lesson's full model does better
    # ... while one image's row shares its style: rows differ from each other more than ... nothing else varies
    # but z, so two different images give different renderings of the same digit
    assert float((grid[0] - grid[1]).abs().mean()) > 0.02
    sub = style_transfer(model, x[:1], c[:1], targets=[0, 5])
    assert sub.shape == (1, 2, 1, 28, 28) and torch.allclose(sub[0, 1], grid[0, 5], atol=1e-6)
    with pytest.raises(KitError, match="class-conditional"):
        style_transfer(mnist["vae"], x, c)
    with pytest.raises(KitError, match="classes for 4 images"):
        style_transfer(model, x, c[:3])


def test_bad_images_are_clear_errors(mnist):
    with pytest.raises(KitError, match=r"this model needs \[N, 1, 28, 28\]"):
        encode(mnist["vae"], torch.zeros(2, 3, 32, 32))
    with pytest.raises(KitError, match="codes must be"):
        decode(mnist["vae"], torch.zeros(2, 5))
    with pytest.raises(KitError, match="unconditional"):
        encode(mnist["vae"], mnist["x"][:2], torch.tensor([1, 2]))
    assert math.isclose(float(encode(mnist["vae"], (mnist["x"][:1] * 255).round().byte()).sum()),
                        float(encode(mnist["vae"], mnist["x"][:1]).sum()), rel_tol=1e-4)
