"""Exercise checks for lessons 03-04: condition injection, class samples, label swap, a measured k-NN accuracy,
slerp, prompt rules, and the two lessons' predict-first questions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ...errors import PromptError
from ._core import Question, _call, _close, _fail, _ok, _require_callable, _require_tensor, register_questions


__all__ = ["check_condition_concat", "check_class_samples", "check_label_swap", "check_obedience_loss",
           "check_latent_knn", "check_slerp", "check_prompt_rule"]

register_questions({
    "03.swap": Question(
        {"a": "mostly the image's own class: the code remembers what the image was",
         "b": "mostly the new class: the decoder follows the label", "c": "mostly noise"},
        "b", "with beta = 1 every nat that z holds costs a nat of KL, and the label arrives for free through c, so z "
        "has no reason to repeat it: the decoder learned to take the class from c and the style from z.",
        "what does it cost the encoder to write the class into z as well, when beta = 1 and the decoder is given "
        "the class anyway?"),
    "03.small_beta_swap": Question(
        {"a": "mostly the new class, as with β = 1", "b": "mostly the image's own class",
         "c": "half and half, always"},
        "b", "at beta = 0.02 a nat in z costs almost nothing, so the encoder writes everything into z - the class "
        "too - and the decoder learns that z alone is enough: it can ignore c.",
        "the ELBO lets z skip what c says; does it forbid z to say it again, and what does that cost at a small "
        "beta?"),
    "03.pooled_prior": Question(
        {"a": "about 10 %", "b": "about as high as with the per-class prior", "c": "0 %"},
        "a", "a prior fitted to the codes of all classes draws the same codes whatever class is asked for; if the "
        "decoder ignored c, each sample would show whichever class its code came from: one in ten, by chance.",
        "does anything in a prior fitted to every class's codes depend on the class you ask for?"),
    "04.which_clusters": Question(
        {"a": "the autoencoder", "b": "the VAE", "c": "the CVAE"},
        "c", "the CVAE's decoder is told the class, so its code is free to describe everything else; the AE's and "
        "VAE's decoders learn the class from z alone, so their codes must sort by it.",
        "whose decoder needs to read the class from z, and whose is given it separately?"),
    "04.lerp_midpoint": Question(
        {"a": "about 4, like the end points", "b": "about 2.8", "c": "about 0"},
        "b", "two nearly perpendicular vectors of length 4: their mean has length sqrt(4^2 + 4^2) / 2 = 4 / sqrt(2), "
        "inside the shell where the prior's codes live.",
        "in 16 dimensions two random directions are nearly perpendicular; add two perpendicular vectors of length "
        "4 and halve the sum."),
})


class _ConcatSpy(TorchFunctionMode):
    """Notes whether any concatenation inside the student's function received a non-float tensor."""

    _CATS = {torch.cat, torch.concat, torch.concatenate, torch.hstack, torch.column_stack}

    def __init__(self) -> None:
        super().__init__()
        self.non_float: list[torch.dtype] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._CATS:
            tensors = args[0] if args else kwargs.get("tensors", kwargs.get("tensor", ()))
            self.non_float += [t.dtype for t in tensors if isinstance(t, Tensor) and not t.is_floating_point()]
        return func(*args, **kwargs)


def check_condition_concat(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z, c, num_classes)``: the decoder input of a one-hot CVAE, ``[B, latent + num_classes]``, built from a
    float one-hot vector (an integer one-hot that ``torch.cat`` promotes silently is refused).

    Reference: a :class:`cvaelib.ConditionalVAE` with ``injection="onehot"``: its decoder applied to your input must
    equal ``model.decode(z, c)``.
    """
    from ...models import ConditionalVAE

    check = "check_condition_concat"
    _require_callable(check, fn, "condition_concat")
    torch.manual_seed(0)
    k, latent = 10, 4
    model = ConditionalVAE(image_shape=(1, 28, 28), num_classes=k, latent_dim=latent, injection="onehot").eval()
    z = torch.randn(5, latent, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([3, 0, 9, 3, 7])
    spy = _ConcatSpy()
    with spy:
        out = _call(check, fn, z, c, k)
    out = _require_tensor(check, out, None, "decoder input")
    if tuple(out.shape) == (5, latent + 1):
        raise _fail(check, f"your result has shape {list(out.shape)}: you appended the class id as one number.",
                    "a class id is a name, not a quantity (class 9 is not 'more' than class 3): give each class "
                    "its own input slot, one of which is 1.")
    if tuple(out.shape)[0] != 5 or tuple(out.shape) == (10, latent):
        raise _fail(check, f"your result has shape {list(out.shape)}, expected [5, {latent + k}].",
                    "each row is one image: join z and the class vector along the feature dimension, not the "
                    "batch dimension.")
    _require_tensor(check, out, (5, latent + k), "decoder input")
    if not out.is_floating_point():
        raise _fail(check, f"your result has dtype {out.dtype}; a network layer needs floats.",
                    "the whole decoder input, z and the class vector, must be floating point.")
    if spy.non_float:
        raise _fail(check, f"you concatenated a {str(spy.non_float[0]).replace('torch.', '')} tensor to the float "
                           f"code z; torch promotes it silently here, but a Linear layer refuses integer input and "
                           f"the one-hot vector is the network's input.",
                    "F.one_hot returns integers: make the class vector float (z's dtype) before it meets z.")
    onehot = F.one_hot(c, k).float()
    if _close(out, torch.cat([onehot, z], 1)):
        raise _fail(check, "the one-hot vector comes first; the model expects z first.",
                    "keep the order the model's decoder was built for: the code, then the condition.")
    with torch.no_grad():
        same = _close(model.decoder(out.float()), model.decode(z, c))
    if not same:
        raise _fail(check, "your decoder input does not reproduce model.decode(z, c).",
                    "z must pass through unchanged, followed by one slot per class with a 1 in the slot of c.")
    _ok(check, "[z, one_hot(c)] is exactly what ConditionalVAE(injection='onehot') feeds its decoder")


def _fitted_prior_cvae() -> Any:
    """A small CVAE whose sampling prior is a (hand-set) per-class Gaussian far from N(0, I): ``model.sample`` then
    differs from decoding z ~ N(0, I), as for the kit's small-beta models."""
    from ...models import ConditionalVAE

    torch.manual_seed(0)
    model = ConditionalVAE(image_shape=(1, 28, 28), num_classes=10, latent_dim=4, prior="fitted",
                           prior_components=1).eval()
    with torch.no_grad():
        model.prior_mean[:, 0] = torch.linspace(-3, 3, 10)[:, None]
        model.prior_scale_tril.mul_(0.3)
        model.prior_is_fitted.fill_(True)
    return model


def check_class_samples(fn: Callable[[Any, int, int, torch.Generator], Tensor]) -> None:
    """``fn(model, label, n, generator)``: ``n`` images of class ``label``, decoded from z ~ N(0, I) drawn with
    ``generator`` - the classic CVAE's way to sample, whatever prior the model itself samples from.

    Reference: ``sigmoid(model.decode(z, c))`` with ``z = torch.randn(n, latent, generator=generator)``.
    """
    check = "check_class_samples"
    _require_callable(check, fn, "class_samples")
    model = _fitted_prior_cvae()
    label, n = 3, 6
    with torch.no_grad():
        out = _call(check, fn, model, label, n, torch.Generator().manual_seed(5))
        out = _require_tensor(check, out, (n, 1, 28, 28), "images").detach().float().cpu()
        again = _call(check, fn, model, label, n, torch.Generator().manual_seed(5)).detach().float().cpu()
        z = torch.randn(n, 4, generator=torch.Generator().manual_seed(5))
        want = torch.sigmoid(model.decode(z, torch.full((n,), label)))
        shortcut = model.sample(n, torch.full((n,), label), generator=torch.Generator().manual_seed(5))
        others = [torch.sigmoid(model.decode(z, torch.full((n,), k))) for k in range(10)]
    if out.min() < 0 or out.max() > 1:
        raise _fail(check, "your images are not in [0, 1].", "decode returns logits: squash them into (0, 1).")
    if _close(out, want):
        _ok(check, f"{n} images of class {label} from z ~ N(0, I), reproducible with the generator")
        return
    if _close(out, shortcut):
        raise _fail(check, "you called model.sample, which draws z from the model's own sampling prior - for this "
                           "test model (like the kit's small-beta CVAEs) a mixture fitted per class, not N(0, I).",
                    "write the two steps yourself: draw the codes from N(0, I) with the generator you are given, "
                    "then decode them with the class.")
    for k, img in enumerate(others):
        if _close(out, img):
            raise _fail(check, f"your images were decoded with class {k}, not {label}.",
                        "every one of the n rows must be decoded with the class `label`.")
    if not _close(out, again):
        raise _fail(check, "two calls with identically seeded generators give different images.",
                    "draw the codes with the `generator` argument, not the global random state.")
    raise _fail(check, "your images differ from decoding z ~ N(0, I) drawn with the generator.",
                "draw n codes of model.latent_dim numbers each from a standard normal (mean 0, std 1) with the "
                "generator, in one call, and decode them without any other change.")


def check_label_swap(fn: Callable[[Any, Tensor, Tensor, Tensor], Tensor]) -> None:
    """``fn(model, x, c, new_c)``: encode images ``x`` with their own classes ``c`` (the posterior mean), decode the
    same codes with the classes ``new_c``; images in [0, 1].

    Reference: ``sigmoid(model.decode(model.encode(x, c)[0], new_c))``.
    """
    from ...models import ConditionalVAE

    check = "check_label_swap"
    _require_callable(check, fn, "label_swap")
    torch.manual_seed(0)
    model = ConditionalVAE(image_shape=(1, 28, 28), num_classes=10, latent_dim=4, prior="standard").eval()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(5, 1, 28, 28, generator=g)
    c, new_c = torch.tensor([1, 4, 4, 7, 9]), torch.tensor([6, 0, 2, 3, 5])
    with torch.no_grad():
        out = _require_tensor(check, _call(check, fn, model, x, c, new_c), x.shape, "images").detach().float()
        again = _call(check, fn, model, x, c, new_c).detach().float()
        mu = model.encode(x, c)[0]
        want = torch.sigmoid(model.decode(mu, new_c))
        logits = model.decode(mu, new_c)
        own = torch.sigmoid(model.decode(mu, c))
        wrong_code = torch.sigmoid(model.decode(model.encode(x, new_c)[0], new_c))
    if _close(out, want):
        _ok(check, "codes from (x, own class), decoded with the new class")
        return
    if _close(out, logits):
        raise _fail(check, "your images are logits, not pixel intensities.", "squash the decoder's output into (0, 1).")
    if _close(out, own):
        raise _fail(check, "you decoded with the images' own classes: that is a reconstruction, not a swap.",
                    "the decoder should receive new_c.")
    if _close(out, wrong_code):
        raise _fail(check, "you encoded the images with the *new* class.",
                    "the code must describe the image as it is, so the encoder gets the image's true class; only "
                    "the decoder gets the new one.")
    if not _close(out, again):
        raise _fail(check, "two calls give different images: your code is a random sample of q(z|x, c).",
                    "use the centre of q(z|x, c), the first thing encode returns, so the test is repeatable.")
    raise _fail(check, "your images differ from decoding the codes of (x, c) with new_c.",
                "print the shapes: encode returns a pair, and the code is its first element.")


def check_obedience_loss(fn: Callable[[Any, Any, Tensor, Tensor], Tensor]) -> None:
    """``fn(model, critic, z, c)``: decode the codes ``z`` with random *other* classes, and return the cross-entropy
    of the ``critic`` (weights frozen for this term) on those images against the new classes.

    Reference: ``F.cross_entropy(critic(sigmoid(model.decode(z, new_c))), new_c)`` with ``new_c != c`` drawn
    uniformly from the other classes; gradients reach the decoder and ``z``, not the critic.
    """
    from ...models import ConditionalVAE

    check = "check_obedience_loss"
    _require_callable(check, fn, "obedience_loss")

    class Spy(ConditionalVAE):
        def decode(self, z, c=None):
            self.labels.append(c.detach().clone())
            return super().decode(z, c)

    torch.manual_seed(0)
    model = Spy(image_shape=(1, 28, 28), num_classes=10, latent_dim=4, prior="standard")
    model.labels = []
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    z = torch.randn(300, 4, requires_grad=True)
    c = torch.arange(300) % 10
    out = _call(check, fn, model, critic, z, c)
    if not isinstance(out, Tensor) or out.numel() != 1:
        raise _fail(check, f"return one number (a 0-d tensor), got {type(out).__name__}"
                           f"{list(out.shape) if isinstance(out, Tensor) else ''}.", "average over the batch.")
    if not model.labels:
        raise _fail(check, "your function never calls model.decode.", "the term judges *decoded* images.")
    new_c = model.labels[-1].long()
    if bool((new_c == c).all()):
        raise _fail(check, "you decoded every code with its own class: that trains reconstructions, not obedience.",
                    "each code must be decoded with a class it was not encoded with.")
    if bool((new_c == c).any()):
        raise _fail(check, f"{int((new_c == c).sum())} of 300 new labels equal the old ones.",
                    "draw from the *other* classes only: a random offset between 1 and K - 1, wrapped around K.")
    offsets = torch.unique((new_c - c) % 10)
    if len(offsets) < 5:
        raise _fail(check, f"each class is always swapped to the same few classes (offsets {offsets.tolist()}).",
                    "draw the new class at random for every image, so every other class gets asked for.")
    with torch.no_grad():
        images = torch.sigmoid(ConditionalVAE.decode(model, z, new_c))
        want = float(F.cross_entropy(critic(images), new_c))
        old_target = float(F.cross_entropy(critic(images), c))
        on_logits = float(F.cross_entropy(critic(ConditionalVAE.decode(model, z, new_c)), new_c))
    got = float(out.detach())
    if not math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5):
        if math.isclose(got, old_target, rel_tol=1e-4):
            raise _fail(check, "the critic is asked for the images' *old* classes.",
                        "the term rewards images that look like the class they were decoded with.")
        if math.isclose(got, on_logits, rel_tol=1e-4):
            raise _fail(check, "you gave the critic the decoder's logits.",
                        "the critic learned on real images in [0, 1]: give it images, not logits.")
        raise _fail(check, f"your loss is {got:.4f}; the critic's cross-entropy on those decoded images against "
                           f"their new classes is {want:.4f}.", "check the images you pass and the targets.")
    if not out.requires_grad:
        raise _fail(check, "no gradient flows from your loss back to the decoder.",
                    "compute it with ordinary tensor operations: no torch.no_grad() and no .detach() on the images.")
    out.backward()
    if any(q.grad is not None and float(q.grad.abs().sum()) > 0 for q in critic.parameters()):
        raise _fail(check, "the critic's weights get a gradient from this term.",
                    "freeze the critic for this term (e.g. the lesson's frozen(critic, images)): otherwise the cheapest "
                    "way to lower it is to teach the critic to call any decoded image what it was asked to be.")
    if z.grad is None or float(z.grad.abs().sum()) == 0 or model.decoder.net[0].weight.grad is None:
        raise _fail(check, "no gradient reaches the decoder or the codes.", "do not detach the decoded images.")
    _ok(check, "random other labels, decoded, judged by the frozen critic: gradients reach the decoder only")


def check_latent_knn(value: Any, model: Any, images: Tensor, labels: Tensor, beta: float = 4.0,
                     name: str = "knn_beta4") -> None:
    """A measured k-NN accuracy: ``value`` must be what :func:`cvaelib.viz.latent.knn_accuracy` gives for the codes of
    ``images`` under ``model``, a trained label-conditioned model with the requested ``beta``."""
    from ...viz import latent

    check = "check_latent_knn"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _fail(check, f"{name} should be a number, got a {type(value).__name__}.",
                    "keep the fraction the k-NN function returns.") from None
    if not 0.0 <= v <= 1.0 or math.isnan(v):
        raise _fail(check, f"{name} = {v:.4g} is not a fraction between 0 and 1.",
                    "an accuracy is a fraction; do not multiply it by 100.")
    if getattr(model, "condition", None) != "label":
        raise _fail(check, f"the model you measured is a {type(model).__name__}, not a class-conditional one.",
                    "the exercise compares two CVAEs.")
    got_beta = float(model.config.get("beta", float("nan")))
    if not math.isclose(got_beta, beta):
        raise _fail(check, f"your model has beta = {got_beta:g}; the exercise asks for beta = {beta:g}.",
                    "set beta when you build the model.")
    n = min(256, len(images))
    device = next(model.parameters()).device
    with torch.no_grad():
        x, c = images[:n].to(device).float(), labels[:n].to(device)
        torch.manual_seed(0)
        trained = float(model.loss(x, c)["recon"])
        fresh = type(model)(**{k: v for k, v in model.config.items() if k != "model"}).to(device).eval()
        torch.manual_seed(0)
        untrained = float(fresh.loss(x, c)["recon"])
    if trained > 0.97 * untrained:
        raise _fail(check, f"the model reconstructs no better than an untrained one ({trained:.0f} vs "
                           f"{untrained:.0f} nats).", "train it (fit) before measuring its codes.")
    want = latent.knn_accuracy(latent.latents(model, images, labels), labels)
    if not math.isclose(v, want, abs_tol=1e-6):
        raise _fail(check, f"{name} = {v:.4f}, but the codes of your beta = {beta:g} model on these images give "
                           f"{want:.4f}.",
                    "measure this model's codes (posterior means) of the same test images, with their labels.")
    _ok(check, f"{name} = {v:.1%} for the beta = {beta:g} CVAE (chance: {1 / model.num_classes:.0%})")


def check_slerp(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z0, z1, steps)``: ``steps`` points from ``z0`` to ``z1`` along the great circle, norms interpolated.

    Reference: :func:`cvaelib.interpolate.slerp`.
    """
    from ...interpolate import lerp, slerp

    check = "check_slerp"
    _require_callable(check, fn, "slerp")
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g) * 1.5
    out = _require_tensor(check, _call(check, fn, z0, z1, 5), (5, 16), "path")
    want, line = slerp(z0, z1, 5), lerp(z0, z1, 5)
    if _close(out, want, rtol=1e-3, atol=1e-4):
        _ok(check, "the path follows the great circle and keeps the (interpolated) length, like "
                   "cvaelib.interpolate.slerp")
        return
    dirs, want_dirs = F.normalize(out, dim=-1), F.normalize(want, dim=-1)
    if torch.allclose(dirs, want_dirs, atol=1e-3):
        raise _fail(check, f"the directions are right but the lengths are not (yours: "
                           f"{', '.join(f'{float(v):.2f}' for v in out.norm(dim=-1))}; |z0| = {float(z0.norm()):.2f}, "
                           f"|z1| = {float(z1.norm()):.2f}).",
                    "the formula gives unit vectors; scale each by a length that goes from |z0| to |z1| with t.")
    if not (_close(out[0], z0, 1e-3, 1e-4) and _close(out[-1], z1, 1e-3, 1e-4)):
        raise _fail(check, "the path must start at z0 (first row) and end at z1 (last row).",
                    "with `steps` points, t must run from exactly 0 to exactly 1.")
    if _close(out, line, 1e-3, 1e-4):
        raise _fail(check, "that is a straight line (lerp): its middle points are shorter than z0 and z1.",
                    "interpolate the *angle* between the two directions, not the coordinates.")
    raise _fail(check, "the points leave the great circle through z0 and z1.",
                "the formula holds for unit vectors: normalise z0 and z1 before you use it, measure the angle "
                "between the unit vectors, and use the same t in both sine terms.")


def check_prompt_rule(fn: Callable[[str], bool], label: int = 6, dataset: str = "fashion-mnist",
                      texts: Sequence[str] | None = None) -> None:
    """``fn(text) -> bool``: does the prompt ask for class ``label``?  Reference: :func:`cvaelib.prompts.parse_prompt`.

    The default texts probe the rules that trip up a first attempt at "shirt": case, plurals, punctuation,
    longer phrases that contain the word ("T-shirt", "sweatshirt") and words that merely start with it.
    """
    from ...prompts import parse_prompt

    check = "check_prompt_rule"
    _require_callable(check, fn, "rule")
    texts = list(texts) if texts is not None else [
        "a shirt", "two Shirts!", "SHIRT", "a dress shirt", "a shirt and a bag", "a T-shirt", "t-shirts",
        "a sweatshirt", "shirtless", "a bag", "t-shirts and a shirt", "a polo shirt"]
    for text in texts:
        try:
            expected = label in parse_prompt(text, dataset)
        except PromptError:
            expected = False
        got = _call(check, fn, text)
        if not isinstance(got, (bool, int)) and got is not None and not hasattr(got, "group"):
            raise _fail(check, f"for {text!r} your rule returned a {type(got).__name__}.",
                        "return True or False (a match object or None is fine too).")
        if bool(got) != expected:
            verdict = "should" if expected else "should not"
            hints = {"a T-shirt": "a longer phrase wins: 'T-shirt' is its own class, so take it out of the text "
                                  "before you look for 'shirt'.",
                     "t-shirts": "a longer phrase wins, plural included: take 'T-shirts' out of the text before "
                                 "you look for 'shirt'.",
                     "a sweatshirt": "'shirt' inside another word is not the word 'shirt': match whole words.",
                     "shirtless": "a word that only starts with 'shirt' is not the word: a whole word ends "
                                  "where the letters end.",
                     "two Shirts!": "people write capitals and plurals: normalise the case and accept an 's'.",
                     "SHIRT": "people write capitals: normalise the case first."}
            raise _fail(check, f"{text!r} {verdict} count as class {label} (parse_prompt gives "
                               f"{parse_prompt(text, dataset) if expected else 'another class or none'}).",
                        hints.get(text, "normalise the text (case, punctuation) first, then match whole words."))
    _ok(check, f"your rule agrees with cvaelib.prompts.parse_prompt on {len(texts)} prompts")
