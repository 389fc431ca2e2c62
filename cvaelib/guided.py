"""CLIP-guided latent optimisation (lesson 08): steer a trained decoder toward a text prompt.

Instead of *sampling* a latent and hoping the image matches the prompt, treat the latent as a parameter and
lower a CLIP loss between the decoded image and the prompt's text embedding:

    z* = argmin_z  E_aug[ fit(CLIP_img(aug(decode(z))), CLIP_txt(prompt, negatives)) ]  +  prior_weight * prior(z)

where ``fit`` is minus the cosine, CLIP's contrastive classification loss against negative prompts, or a sum over
several weighted prompts (:mod:`cvaelib.guided_objectives`), or the caller's own ``loss_fn``:

* **augmentations** (random small affine warps and pixel noise, ``n_augment`` views per image) stop the optimiser
  from finding an adversarial pixel pattern that fools CLIP but looks like nothing: the image has to match the
  prompt from every view (as in VQGAN+CLIP, Crowson et al. 2022, https://arxiv.org/abs/2204.08583, and
  CLIPDraw, Frans et al. 2021, https://arxiv.org/abs/2106.14843);
* a **prior term** keeps ``z`` where the decoder was trained: ``0.5 * mean(z^2)`` for a Gaussian latent (the
  negative log-density of N(0, I) per dimension), the squared distance to the nearest code for a VQ-VAE grid;
* the **decoder** itself is the strongest regulariser: it can only draw images like its training set.

The optimiser can also move the condition of a CLIP-CVAE (its condition vector, kept unit length).  A label CVAE's
class is chosen, not optimised: the class whose decoded images CLIP scores highest (softmax mixes of class
embeddings decode to in-between blobs that please CLIP a little for every prompt).  :func:`optimise_latent` is the general
loop; :func:`guide_model` sets it up for any kit model (VAE, CVAE, CLIP-CVAE, VQ-VAE).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import KitError
from .guided_objectives import DEFAULT_TAU, check_weighted_prompts, choose_fit_term


@dataclass
class GuidedResult:
    """What :func:`optimise_latent` returns.

    Attributes:
        images: the final images ``[n, C, H, W]`` in [0, 1] (CPU).
        latents: the final latents (CPU, detached).
        condition: the final condition (soft class weights or CLIP vector), or None.
        similarity: mean CLIP similarity of the un-augmented images, before step 1 and after every step.
        per_image: final similarity of each image ``[n]``.
        frames: images at ``frame_steps`` (for the strip over steps), each ``[n, C, H, W]``.
        frame_steps: the step of each frame (0 = the starting images).
        settings: how the run was made (prompt, negatives, n_augment, steps, lr, prior_weight, tau, loss, seed).
    """

    images: Tensor
    latents: Tensor
    condition: Tensor | None
    similarity: list[float]
    per_image: Tensor
    frames: list[Tensor] = field(default_factory=list)
    frame_steps: list[int] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def gain(self) -> float:
        """How much the mean similarity rose (last minus first)."""
        return self.similarity[-1] - self.similarity[0]


# ------------------------------------------------------------------------------------------------ CLIP with grad
def image_features(encoder, images: Tensor) -> Tensor:
    """Unit-length CLIP embeddings of ``images`` in [0, 1] *with gradients* (``encode_images`` has none).

    Uses the :class:`~cvaelib.clip.ClipEncoder` hooks: tensor preprocessing, then ``_encode_image_pixels``.  Any
    other scorer works if it has a differentiable ``encode_images_grad(images)``.
    """
    if hasattr(encoder, "encode_images_grad"):
        return F.normalize(encoder.encode_images_grad(images).float(), dim=-1)
    if not (hasattr(encoder, "preprocess") and hasattr(encoder, "_encode_image_pixels")):
        raise KitError(f"{type(encoder).__name__} is not a ClipEncoder (no preprocess/_encode_image_pixels); "
                       f"wrap it with cvaelib.clip.load_clip or give it an encode_images_grad(images) method")
    with warnings.catch_warnings():  # preprocess() range-checks with float(min): harmless on a grad tensor
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
        pixels = encoder.preprocess(images.clamp(0, 1))
    return F.normalize(encoder._encode_image_pixels(pixels).float(), dim=-1)


def text_features(encoder, prompt: str | Tensor) -> Tensor:
    """The prompt's unit-length text embedding ``[D]`` (a string, or an embedding given directly)."""
    if isinstance(prompt, Tensor):
        return F.normalize(prompt.float().reshape(-1)[None], dim=-1)[0]
    if not isinstance(prompt, str) or not prompt.strip():
        raise KitError("the prompt is empty; describe what to draw, e.g. 'a handwritten seven'")
    return encoder.encode_text([prompt])[0]


def augment(images: Tensor, n_augment: int, generator: torch.Generator | None = None, shift: float = 0.1,
            rotate: float = 10.0, scale: float = 0.1, noise: float = 0.03) -> Tensor:
    """``n_augment`` random views of every image, differentiable: ``[n_augment * N, C, H, W]`` (view-major).

    Each view is a random affine warp (shift up to ``shift`` of the size, rotation up to ``rotate`` degrees, zoom
    up to ``scale``) plus Gaussian pixel noise of std ``noise``; the first view is the image itself.
    """
    if n_augment < 1:
        raise KitError(f"n_augment must be >= 1, got {n_augment}")
    n = images.shape[0]
    views = [images]
    if n_augment > 1:
        m = (n_augment - 1) * n
        r = torch.rand(m, 4, generator=generator).to(images.device)
        angle = (r[:, 0] * 2 - 1) * math.radians(rotate)
        zoom = 1 + (r[:, 1] * 2 - 1) * scale
        tx, ty = (r[:, 2] * 2 - 1) * 2 * shift, (r[:, 3] * 2 - 1) * 2 * shift  # affine_grid spans [-1, 1]
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        rep = images.repeat(n_augment - 1, 1, 1, 1)
        grid = F.affine_grid(theta.to(images.dtype), list(rep.shape), align_corners=False)
        warped = F.grid_sample(rep, grid, align_corners=False, padding_mode="zeros")
        eps = torch.randn(warped.shape, generator=generator).to(images.device)
        views.append((warped + noise * eps).clamp(0, 1))
    return torch.cat(views)


# ------------------------------------------------------------------------------------------------------ the loop
def optimise_latent(decoder_fn: Callable[..., Tensor], clip_encoder, prompt: str | Tensor, z_init: Tensor,
                    steps: int = 100, lr: float = 0.05, n_augment: int = 8, prior_weight: float = 0.1,
                    prior_fn: Callable[[Tensor], Tensor] | None = None, condition: Tensor | None = None,
                    optimise_condition: bool = False, condition_lr: float | None = None, n_frames: int = 8,
                    seed: int = 0, augment_kwargs: dict | None = None, negatives: list[str] | None = None,
                    tau: float = DEFAULT_TAU, loss_fn: Callable[..., Tensor] | None = None) -> GuidedResult:
    """Lower a CLIP loss between ``decoder_fn(z[, c])`` and ``prompt`` (plus a prior) by Adam on ``z`` (and ``c``).

    Args:
        decoder_fn: ``z -> images`` in [0, 1] (or ``(z, c) -> images`` when ``condition`` is given); differentiable.
        clip_encoder: a :class:`~cvaelib.clip.ClipEncoder` (TinyCLIP, ViT-B/32, ...).
        prompt: the text (or its embedding), or weighted prompts ``[(text, weight), ...]`` (see
            :func:`cvaelib.guided_objectives.parse_weighted_prompts`; ``similarity`` then follows the first text).
        z_init: starting latents ``[n, ...]``; ``n`` images are optimised at once, independently.
        steps, lr: Adam steps and learning rate.
        n_augment: views per image per step (1 = no augmentation).
        prior_weight: weight of ``prior_fn(z)`` (a scalar); default prior ``0.5 * mean(z^2)``.
        condition: a starting condition passed to ``decoder_fn`` as its second argument.
        optimise_condition: also optimise ``condition`` (else it stays fixed).
        condition_lr: its learning rate (default ``lr``).
        n_frames: how many snapshots (evenly spaced, first and last included) to keep for the strip.
        seed: seeds the augmentations.
        negatives: other prompts (e.g. the other classes). With them the objective becomes contrastive, CLIP's own
            classification loss ``-log softmax(sims / tau)[prompt]``: only what makes the image *more like the
            prompt than like the negatives* pays, not what raises every similarity at once, and the pull fades once
            CLIP is sure. ``similarity`` still reports the plain cosine.
        tau: the contrastive loss's temperature (CLIP's initial 0.07).
        loss_fn: your own fit term, ``loss_fn(image_feats [V, D], text_feats [T, D]) -> scalar`` (rows: the prompt,
            then the negatives), or ``loss_fn(image_feats, text_feats, weights)`` for weighted prompts; replaces
            the built-in one (:func:`~cvaelib.guided_objectives.contrastive_loss` with negatives, else
            :func:`~cvaelib.guided_objectives.cosine_loss`; :func:`~cvaelib.guided_objectives.weighted_prompt_loss`).
    """
    if steps < 0:
        raise KitError(f"steps must be >= 0, got {steps}")
    if not isinstance(z_init, Tensor) or z_init.dim() < 2:
        raise KitError("z_init must be a tensor of latents [n, ...] (one row per image)")
    prior_fn = prior_fn or (lambda z: 0.5 * z.pow(2).mean())
    weights = None
    if isinstance(prompt, (list, tuple)):  # weighted prompts [(text, weight), ...]
        pairs = check_weighted_prompts(prompt)
        if negatives:
            raise KitError("weighted prompts carry their own negatives (negative weights); drop negatives=")
        texts = F.normalize(clip_encoder.encode_text([t for t, _ in pairs]).float(), dim=-1)
        weights = torch.tensor([w for _, w in pairs])
    else:
        texts = text_features(clip_encoder, prompt)[None]
    if negatives:
        texts = torch.cat([texts, F.normalize(clip_encoder.encode_text(list(negatives)).float(), dim=-1)])
    fit_fn, fit_name = choose_fit_term(weights, bool(negatives), tau, loss_fn)
    settings = {"prompt": prompt if isinstance(prompt, (str, list, tuple)) else "<embedding>", "loss": fit_name,
                "negatives": list(negatives or []), "n_augment": n_augment, "steps": steps, "lr": lr,
                "prior_weight": prior_weight, "tau": tau, "seed": seed}
    g = torch.Generator().manual_seed(seed)
    z = z_init.detach().clone().float().requires_grad_(True)
    groups = [{"params": [z], "lr": lr}]
    c = None
    if condition is not None:
        c = condition.detach().clone().float().requires_grad_(optimise_condition)
        if optimise_condition:
            groups.append({"params": [c], "lr": lr if condition_lr is None else condition_lr})
    opt = torch.optim.Adam(groups, lr=lr)
    frame_at = sorted({round(i * steps / max(n_frames - 1, 1)) for i in range(n_frames)}) if n_frames > 0 else []

    def decode() -> Tensor:
        return decoder_fn(z) if c is None else decoder_fn(z, c)

    history: list[float] = []
    frames: list[Tensor] = []
    frame_steps: list[int] = []
    n = z.shape[0]
    for step in range(steps + 1):
        images = decode()
        views = augment(images, n_augment, g, **(augment_kwargs or {}))
        feats = image_features(clip_encoder, views)
        text_feats = texts.to(feats.device)
        clean = (feats[:n] @ text_feats[0]).detach()  # the un-augmented images' cosine with the (first) prompt
        history.append(float(clean.mean()))
        if step in frame_at:
            frames.append(images.detach().cpu())
            frame_steps.append(step)
        if step == steps:
            break
        loss = fit_fn(feats, text_feats) + prior_weight * prior_fn(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return GuidedResult(images.detach().cpu(), z.detach().cpu(), None if c is None else c.detach().cpu(),
                        history, clean.cpu(), frames, frame_steps, settings)


# ------------------------------------------------------------------------------------------- kit model adapters
@torch.no_grad()
def _class_scores(model, clip_encoder, prompt: str | Tensor, z: Tensor | None, n: int) -> Tensor:
    """CLIP similarity of each class's decoded images to the prompt ``[n, num_classes]``: from the shared codes
    ``z``, or - for a model whose samples come from a prior fitted per class - from that class's own codes."""
    text = text_features(clip_encoder, prompt)
    device = next(model.parameters()).device
    sims = []
    for k in range(model.num_classes):
        c = torch.full((n,), k, dtype=torch.long, device=device)
        # a fixed seed per class keeps the scores comparable
        zk = model.sample_latent(n, c, torch.Generator(device=device).manual_seed(k)) if model.uses_fitted_prior else z
        feats = image_features(clip_encoder, model.decode_images(zk, c))
        sims.append(feats @ text.to(feats.device))
    return torch.stack(sims, 1).cpu()


def guide_model(model, clip_encoder, prompt: str | list[tuple[str, float]], n: int = 8, steps: int = 100,
                lr: float | None = None, n_augment: int = 8, prior_weight: float | None = None,
                label: int | None = None, condition: Tensor | None = None, optimise_condition: bool = False,
                start: str = "sample", n_frames: int = 8, seed: int = 0, z_init: Tensor | None = None,
                negatives: list[str] | None = None, prior_fn: Callable[[Tensor], Tensor] | None = None,
                tau: float = DEFAULT_TAU, loss_fn: Callable[..., Tensor] | None = None) -> GuidedResult:
    """CLIP-guided optimisation set up for any kit model, by its condition kind and its latent hooks.

    * unconditional: optimise the latent from a sample of the model's prior (``sample_latent``);
    * class-conditional: the latent, with class ``label``; without a label the class CLIP scores highest is chosen
      first (``result.condition`` holds it) - unless the decoder ignores the class and the start is random (a VQ-VAE
      whose class lives in its prior only);
    * conditioned on vectors (CLIP embeddings, attributes): the latent with ``condition`` (required: one vector
      ``[D]`` for all images or one per image ``[n, D]``), optionally optimised too (CLIP vectors kept unit length).

    The latent starts from the model's sampling prior (``start="sample"``: a fitted mixture, a VQ-VAE's code prior)
    or from ``random_latent`` (``start="random"``), or at ``z_init``.  The prior term is the model's
    ``latent_penalty`` (N(0, I)'s negative log-density, a fitted prior's, a VQ grid's distance to its codebook)
    unless ``prior_fn`` is given; ``lr`` and ``prior_weight`` default to the model's ``guidance_lr`` and
    ``guidance_prior_weight``.  ``negatives`` (other prompts) make the objective contrastive (see
    :func:`optimise_latent`) and also guide the class choice; ``prompt`` may be weighted prompts
    ``[(text, weight), ...]``; ``tau`` and ``loss_fn`` go to :func:`optimise_latent`.
    """
    if n < 1:
        raise KitError(f"n must be a positive number of images, got {n}")
    if start not in ("sample", "random"):
        raise KitError(f"start must be 'sample' or 'random', got {start!r}")
    device = next(model.parameters()).device
    model.eval()
    g = torch.Generator().manual_seed(seed)
    kind = model.condition
    lr = model.guidance_lr if lr is None else lr
    prior_weight = model.guidance_prior_weight if prior_weight is None else prior_weight
    z0: Tensor | None = None
    if z_init is not None:
        want = (n, *model.random_latent(1, torch.Generator().manual_seed(0)).shape[1:])
        if tuple(z_init.shape) != want:
            raise KitError(f"z_init must have shape {list(want)}, got {list(z_init.shape)}")
        z0 = z_init.float().to(device)
    elif start == "random" or not model.uses_fitted_prior:
        z0 = model.random_latent(n, g)
    c: Tensor | None = None  # the fixed condition of a label model
    cond: Tensor | None = None  # the (optimisable) vector condition
    if kind == "label":
        if label is None and (model.reconstruction_needs_condition or start == "sample"):
            # choose the class CLIP scores highest over all starting latents. A *soft* class (a softmax mix of class
            # embeddings) was tried first: mixes decode to blobs between classes that please CLIP a little for every
            # prompt and that the judge calls "8"; a discrete choice then z-optimisation does not.
            if isinstance(prompt, (list, tuple)):  # weighted prompts: the weighted sum of similarities
                scores = sum(w * _class_scores(model, clip_encoder, t, z0, n)
                             for t, w in check_weighted_prompts(prompt))
            else:
                scores = _class_scores(model, clip_encoder, prompt, z0, n)
            if negatives:  # how much more like the prompt than like the negatives
                scores = scores - torch.stack([_class_scores(model, clip_encoder, t, z0, n)
                                               for t in negatives]).max(0).values
            label = int(scores.mean(0).argmax())
        if label is not None:
            if not 0 <= int(label) < model.num_classes:
                raise KitError(f"label must be a class id in 0..{model.num_classes - 1}, got {label}")
            c = torch.full((n,), int(label), dtype=torch.long, device=device)
    elif kind is not None:
        if condition is None:
            raise KitError(f"{model.name} needs a starting condition: pass condition=<a vector [D]> (e.g. "
                           f"cvaelib.conditioning.bridge.text_anchor(model, encoder, prompt))")
        cond = condition.float().to(device)
        cond = cond.reshape(1, -1).expand(n, -1) if cond.dim() == 1 or cond.shape[0] == 1 else cond
        if cond.shape[0] != n:
            raise KitError(f"condition must be one vector [D] or one per image [{n}, D], got {list(condition.shape)}")
    if z0 is None:
        z0 = model.sample_latent(n, c if cond is None else cond, g)
    if cond is None:
        def decoder_fn(z):
            return model.decode_images(z, c)
    else:
        unit = kind == "clip"  # CLIP embeddings live on the unit sphere; attribute vectors do not

        def decoder_fn(z, v):
            return model.decode_images(z, F.normalize(v, dim=-1) if unit else v)

    prior_fn = prior_fn or (lambda z: model.latent_penalty(z, c))
    with torch.enable_grad():
        result = optimise_latent(decoder_fn, clip_encoder, prompt, z0, steps=steps, lr=lr, n_augment=n_augment,
                                 prior_weight=prior_weight, prior_fn=prior_fn, condition=cond,
                                 optimise_condition=optimise_condition, n_frames=n_frames, seed=seed,
                                 negatives=negatives, tau=tau, loss_fn=loss_fn)
    if c is not None:
        result.condition = c.cpu()  # the class the images were drawn with
    return result


@torch.no_grad()
def compare_with_sampling(model, encoder, prompts: dict[int, str], judge, n: int = 16, steps: int = 60,
                          n_augment: int = 8, prior_weight: float = 0.1, lr: float = 0.05,
                          optimise_condition: bool = False, bridge: str = "retrieval", k: int = 64,
                          z_noise: float | None = 0.5, contrastive: bool = True, seed: int = 0,
                          loss_fn: Callable[..., Tensor] | None = None) -> dict[str, object]:
    """Prompt accuracy of plain CLIP-CVAE sampling vs the same samples refined by CLIP-guided optimisation.

    For each ``label -> prompt``: :func:`cvaelib.clip_generate.generate_from_text` draws ``n`` samples
    ("sampled"); the same starting conditions and latents (retrieved neighbours' codes plus ``z_noise`` noise, as
    there) are then optimised toward the prompt ("guided": the latents, and with ``optimise_condition`` the
    conditions too). ``judge`` (the kit's classifier) decides whether each image shows ``label``.  With
    ``contrastive`` the other prompts are the negatives; the prior term keeps each latent near its start;
    ``loss_fn`` replaces the fit term (see :func:`optimise_latent`).

    Returns ``{"sampled": acc, "guided": acc, "per_class": {label: (sampled, guided)}, "similarity":
    (mean start, mean end)}``.
    """
    from .classifier import predict
    from .clip_generate import generate_from_text
    from .conditioning.bridge import text_start

    per_class: dict[int, tuple[float, float]] = {}
    sims = []
    for label, prompt in prompts.items():
        s = seed + int(label)
        sampled = generate_from_text(model, encoder, prompt, n, seed=s, bridge=bridge, k=k, z_noise=z_noise)
        # the same draws generate_from_text makes, so "guided" refines exactly the "sampled" images
        c, z = text_start(model, encoder, prompt, n, bridge=bridge, k=k, generator=torch.Generator().manual_seed(s),
                          z_noise=z_noise)
        start = z.clone().to(next(model.parameters()).device)

        def stay_near_start(zz, start=start):  # the samples' own latents are in-distribution: stay close
            return 0.5 * (zz - start).pow(2).mean()

        negatives = [t for other, t in prompts.items() if other != label] if contrastive else None
        with torch.enable_grad():
            res = guide_model(model, encoder, prompt, n=n, steps=steps, lr=lr, n_augment=n_augment,
                              prior_weight=prior_weight, condition=c, optimise_condition=optimise_condition,
                              n_frames=0, seed=seed, z_init=z, negatives=negatives, prior_fn=stay_near_start,
                              loss_fn=loss_fn)
        target = torch.full((n,), int(label))
        per_class[int(label)] = (float((predict(judge, sampled) == target).float().mean()),
                                 float((predict(judge, res.images) == target).float().mean()))
        sims.append((res.similarity[0], res.similarity[-1]))
    mean = lambda i: sum(v[i] for v in per_class.values()) / len(per_class)  # noqa: E731
    return {"sampled": mean(0), "guided": mean(1), "per_class": per_class,
            "similarity": (sum(s[0] for s in sims) / len(sims), sum(s[1] for s in sims) / len(sims))}


def strip_figure(result: GuidedResult, rows: int = 4, title: str | None = None):
    """A grid: one row per image (up to ``rows``), one column per frame, titled with the step and similarity."""
    import matplotlib.pyplot as plt

    rows = min(rows, result.frames[0].shape[0]) if result.frames else 0
    cols = len(result.frames)
    if not rows or not cols:
        raise KitError("this result has no frames; run optimise_latent with n_frames > 0")
    fig, axes = plt.subplots(rows, cols, figsize=(1.2 * cols, 1.2 * rows + 0.4), squeeze=False)
    for j, (frame, step) in enumerate(zip(result.frames, result.frame_steps)):
        for i in range(rows):
            img = frame[i].permute(1, 2, 0).squeeze(-1).numpy()
            axes[i, j].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            axes[i, j].axis("off")
        axes[0, j].set_title(f"step {step}\nsim {result.similarity[step]:.2f}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


__all__ = ["GuidedResult", "augment", "compare_with_sampling", "guide_model", "image_features", "optimise_latent",
           "strip_figure", "text_features"]
