"""Exercise checks for lesson 06 (the residual CLIP-CVAE on CelebA): the sources' KL weight in the kit's units,
injecting the condition after a chosen encoder block, re-decoding a face with another condition."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import (ExerciseError, Question, _call, _close, _fail, _ok, _require_callable, _require_tensor, _scalar,
                    register_questions)


__all__ = ["check_source_beta", "check_encode_at", "check_redecode"]

register_questions({
    "06.beta": Question(
        {"a": "0.01, the same number", "b": "about 1", "c": "about 0.0001"},
        "b", "a mean over the 12,288 numbers of a 64x64 colour image and a mean over 128 latent numbers: written as "
             "per-image sums, the KL weight becomes 0.01 * 12288 / 128 = 0.96.",
        "turn both means into sums: how many numbers does each of them average over?"),
    "06.encoder_sees": Question(
        {"a": "no: only an encoder that is handed c can leave out of z what c says",
         "b": "in principle yes: c = CLIP(x) is computed from the same image, so the encoder can learn to see it "
              "too; being handed c only makes it easier",
         "c": "yes, and it always does as well as the other variants"},
        "b", "the condition is a function of the input here (language-free training), so injecting it into the "
             "encoder is a shortcut, not new information: the variants differ by how easily a small encoder can "
             "account for what the decoder will be told.",
        "where does c come from during training, and what does the encoder look at?"),
})


def check_source_beta(fn: Callable[[float, tuple[int, int, int], int], float]) -> None:
    """``fn(kl_weight, image_shape, latent_dim)``: the kit's per-image-sum β equal to the sources'
    ``mean BCE + kl_weight * mean KL``, i.e. ``kl_weight * C*H*W / latent_dim``.

    Reference: the derivation in lesson 06 and the module docstring of :mod:`cvaelib.models.resvae`.
    """
    check = "check_source_beta"
    _require_callable(check, fn, "source_beta")
    cases = [(0.01, (3, 64, 64), 128), (0.01, (3, 64, 64), 512), (0.5, (1, 28, 28), 16), (0.01, (3, 32, 32), 128)]
    answers = []
    for w, shape, d in cases:
        got = _scalar(check, _call(check, fn, w, shape, d), "beta")
        want = w * math.prod(shape) / d
        answers.append(got)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        if math.isclose(got, w, rel_tol=1e-6):
            raise _fail(check, f"you returned the sources' {w} unchanged.",
                        "that weight sits between two *means*; the kit adds up per-image *sums*.")
        if math.isclose(got, w * d / math.prod(shape), rel_tol=1e-6):
            raise _fail(check, "your beta is upside down.",
                        "multiply the source's mean BCE by the number of image values to get a sum; what does the "
                        "KL term then get multiplied by, and how does the KL sum relate to its mean?")
        if math.isclose(got, w * shape[1] * shape[2] / d, rel_tol=1e-6):
            raise _fail(check, "you counted the pixels but not the colour channels.",
                        "the BCE mean runs over every number of the image: channels x height x width.")
        raise _fail(check, f"for kl_weight {w}, image {shape} and a {d}-d latent your beta is {got:.4g}, expected "
                           f"{want:.4g}.", "beta = kl_weight x (numbers averaged by the BCE mean) / (numbers "
                                           "averaged by the KL mean).")
    if len(set(answers)) == 1:
        raise _fail(check, "you return the same number for every shape.", "compute it from the arguments.")
    _ok(check, f"0.01 at 3x64x64 and z 128 is beta = {answers[0]:.2f}; at z 512 it is {answers[1]:.2f}")


def _models(condition_dim: int = 5) -> dict[int, torch.nn.Module]:
    from ...models.resvae import ResidualVAE

    torch.manual_seed(0)
    out = {}
    for point in (3, 4):
        m = ResidualVAE(image_shape=(3, 32, 32), latent_dim=6, injection=f"down{point}", condition_dim=condition_dim, width=4)
        with torch.no_grad():  # a visible condition: its projection is large compared with the feature maps
            m.cond_in.weight.mul_(20.0)
        out[point] = m.eval()
    return out


def _forbid_encode(model: torch.nn.Module) -> None:
    def encode(*_, **__):
        raise ExerciseError("check_encode_at: your function calls model.encode, which injects where the library "
                            "decided; that skips the exercise. Hint: run the blocks of model.down yourself.")
    model.encode = encode  # an instance attribute shadows the method for this check only


def check_encode_at(fn: Callable[..., tuple[Tensor, Tensor]]) -> None:
    """``fn(model, x, c, point)`` -> ``(mu, logvar)`` of a :class:`~cvaelib.models.ResidualVAE` whose condition is
    projected by ``model.cond_in`` and added to the feature maps right after down-block ``point`` (counted from 1).

    Reference: ``ResidualVAE.encode`` of models built with ``injection="down3"`` and ``"down4"``.
    """
    check = "check_encode_at"
    _require_callable(check, fn, "encode_at")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g)
    c = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    for point, model in _models().items():
        with torch.no_grad():
            want = model.encode(x, c)
            h = x
            for block in model.down:
                h = block(h)
            blind = model.mu(h).flatten(1)
        _forbid_encode(model)
        try:
            with torch.no_grad():
                out = _call(check, fn, model, x, c, point)
        except ExerciseError as err:
            cause = err.__cause__
            if isinstance(cause, RuntimeError) and ("size" in str(cause) or "channels" in str(cause)):
                raise _fail(check, f"with point={point} a shape did not fit ({' '.join(str(cause).split())[:120]}).",
                            "the projected condition has as many channels as the output of block `point` (count "
                            "blocks from 1), and it must be broadcast over height and width; add it, do not "
                            "concatenate, and only after that one block.") from None
            raise
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _fail(check, "return the pair (mu, logvar).", "two tensors, like model.encode returns.")
        mu, logvar = out
        _require_tensor(check, mu, None, "mu")
        if mu.dim() == 4:
            raise _fail(check, f"your mu has shape {list(mu.shape)}; the kit's codes are flat [N, latent_dim].",
                        ".flatten(1) the outputs of model.mu and model.logvar.")
        _require_tensor(check, mu, want[0].shape, "mu")
        _require_tensor(check, logvar, want[1].shape, "logvar")
        if _close(mu, want[0]) and _close(logvar, want[1]):
            continue
        if _close(mu, want[1]) and _close(logvar, want[0]):
            raise _fail(check, "mu and logvar are swapped.", "model.mu gives the mean, model.logvar the log-variance.")
        if _close(mu, blind):
            raise _fail(check, f"with point={point} your encoder never adds the condition.",
                        "after block `point`, add model.cond_in(c) to the feature map h.")
        raise _fail(check, f"with point={point} your (mu, logvar) differ from an encoder that adds the condition "
                           f"right after block {point}.",
                    "count the blocks from 1 (enumerate(model.down, start=1)) and add the projected condition after "
                    "the block whose number is `point`, not before it.")
    _ok(check, "the condition enters after the block you name, exactly as injection='down3'/'down4' do")


def check_redecode(fn: Callable[..., Tensor]) -> None:
    """``fn(model, x, c_image, c_new)``: the faces' own codes (posterior means, encoded with *their* conditions),
    decoded with ``c_new``, as images in [0, 1].

    Reference: ``sigmoid(model.decode(model.encode(x, c_image)[0], c_new))``, what
    :func:`cvaelib.clip_generate.manipulate` does once it has mixed the condition.
    """
    check = "check_redecode"
    _require_callable(check, fn, "redecode")
    model = _models()[3]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    c_img = F.normalize(torch.randn(4, 5, generator=g), dim=-1)
    c_new = F.normalize(torch.randn(4, 5, generator=g), dim=-1)
    with torch.no_grad():
        want = torch.sigmoid(model.decode(model.encode(x, c_img)[0], c_new))
        recon = torch.sigmoid(model.decode(model.encode(x, c_img)[0], c_img))
        wrong_enc = torch.sigmoid(model.decode(model.encode(x, c_new)[0], c_new))
        out = _require_tensor(check, _call(check, fn, model, x, c_img, c_new), want.shape, "images").detach()
        again = _call(check, fn, model, x, c_img, c_new)
    if _close(out, want, atol=1e-4):
        _ok(check, "the face's own code, decoded with the new condition")
        return
    if out.min() < 0 or out.max() > 1:
        raise _fail(check, "your images leave [0, 1]: those are logits.", "the decoder returns logits; apply "
                                                                           "torch.sigmoid.")
    if isinstance(again, Tensor) and not _close(out, again.detach().float()):
        raise _fail(check, "two calls gave different images: z was sampled.",
                    "use the posterior *mean* (the first output of model.encode), not a sample of it.")
    if _close(out, recon, atol=1e-4):
        raise _fail(check, "that is the reconstruction: the new condition was never used.",
                    "decode with c_new.")
    if _close(out, wrong_enc, atol=1e-4):
        raise _fail(check, "you encoded the faces with the new condition.",
                    "the encoder must see the condition each face really has (c_image); only the decoder gets c_new.")
    raise _fail(check, "your images differ from the faces' codes decoded with c_new.",
                "z = the posterior mean of x given c_image; images = sigmoid(decoder(z, c_new)).")
