"""Does a conditional model obey its condition?  Class accuracy of its samples, and CLIP score for prompts.

* :func:`conditional_accuracy`: generate images for class ``k`` and ask the kit's independent classifier
  (:mod:`cvaelib.classifier`) what it sees; the fraction judged ``k`` is the model's conditional accuracy.  A model
  that ignores its label scores chance (10 % for ten classes), a perfect one scores the classifier's own accuracy.
* :func:`label_swap`: encode test images with their own class and decode the codes with another class; the share the
  classifier judges as the *new* class (the label-swap rate) says whether the decoder follows its label or reads the
  class from the code.  Class-correct samples alone cannot say it: a per-class sampling prior can pick the class.
* :func:`clip_score`: the cosine between each prompt's CLIP text embedding and the CLIP image embedding of the image
  generated for it (Hessel et al. 2021, "CLIPScore"; reported here as the raw mean cosine, without their 2.5 weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import KitError

__all__ = ["balanced_labels", "clip_score", "conditional_accuracy", "label_swap", "sample_per_class"]


def balanced_labels(n: int, num_classes: int) -> Tensor:
    """``n`` class ids cycling through ``0 .. num_classes-1`` (every class gets n / num_classes samples)."""
    if n < num_classes:
        raise KitError(f"need at least one sample per class: n={n} < {num_classes} classes; raise --n")
    return torch.arange(n) % num_classes


def conditional_accuracy(predicted: Tensor, target: Tensor, num_classes: int | None = None,
                         class_names: list[str] | None = None) -> dict:
    """How often the classifier's verdict ``predicted`` equals the requested class ``target``.

    Returns:
        ``{"mean": macro average over classes, "overall": fraction of all samples, "per_class": {name: acc}}``;
        a class with no samples is left out of the mean.
    """
    predicted, target = predicted.detach().long().cpu().flatten(), target.detach().long().cpu().flatten()
    if predicted.shape != target.shape:
        raise KitError(f"{len(predicted)} predictions for {len(target)} targets; pass one class id per sample")
    if len(target) == 0:
        raise KitError("conditional accuracy needs at least one sample")
    k = num_classes or (len(class_names) if class_names else int(max(target.max(), predicted.max())) + 1)
    names = list(class_names) if class_names else [str(i) for i in range(k)]
    hit = (predicted == target).float()
    per_class = {}
    for c in range(k):
        mask = target == c
        if mask.any():
            per_class[names[c]] = float(hit[mask].mean())
    return {"mean": float(sum(per_class.values()) / len(per_class)), "overall": float(hit.mean()),
            "per_class": per_class}


@torch.no_grad()
def sample_per_class(model: nn.Module, n: int, num_classes: int, seed: int = 0,
                     batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """``n`` samples from a label-conditioned model, balanced over classes: ``(images [N,C,H,W] cpu, labels [N])``."""
    labels = balanced_labels(n, num_classes)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)  # a CPU generator: the same samples on CPU and GPU
    out = [model.sample(len(c), c.to(device), generator=gen).float().cpu() for c in labels.split(batch_size)]
    return torch.cat(out), labels


@torch.no_grad()
def label_swap(model: nn.Module, images: Tensor, labels: Tensor, seed: int = 0,
               batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Each image re-decoded with a random *other* class: ``(swapped images [N,C,H,W] cpu, new labels [N])``.

    Each image is encoded with its own label (posterior mean) and decoded with a label drawn uniformly from the
    ``num_classes - 1`` others (seeded).  Judge the result with :func:`conditional_accuracy` against the new labels.
    """
    k = int(model.num_classes)
    if k < 2:
        raise KitError(f"a label swap needs at least 2 classes, the model has {k}")
    labels = labels.long().cpu()
    gen = torch.Generator().manual_seed(seed)
    new = (labels + torch.randint(1, k, labels.shape, generator=gen)) % k
    device = next(model.parameters()).device
    out = [model.reconstruct(x.to(device).float(), c.to(device), decode_c=c2.to(device)).float().cpu()
           for x, c, c2 in zip(images.split(batch_size), labels.split(batch_size), new.split(batch_size))]
    return torch.cat(out), new


def clip_score(image_embeddings: Tensor, text_embeddings: Tensor, reduction: str = "mean") -> Tensor:
    """Cosine similarity between paired image and text embeddings (rows match); higher = closer to the prompt.

    One text row is broadcast to all images.  Embeddings need not be normalised.
    """
    if image_embeddings.dim() != 2 or text_embeddings.dim() != 2:
        raise KitError(f"clip_score expects [N, D] embeddings, got {tuple(image_embeddings.shape)} and "
                       f"{tuple(text_embeddings.shape)}")
    if image_embeddings.shape[1] != text_embeddings.shape[1]:
        raise KitError(f"image ({image_embeddings.shape[1]}-d) and text ({text_embeddings.shape[1]}-d) embeddings come "
                       f"from different models; embed both with the same CLIP")
    if text_embeddings.shape[0] not in (1, image_embeddings.shape[0]):
        raise KitError(f"{text_embeddings.shape[0]} prompts for {image_embeddings.shape[0]} images; pass one per image")
    cos = F.cosine_similarity(image_embeddings.float(), text_embeddings.float().to(image_embeddings.device), dim=1)
    if reduction == "none":
        return cos
    if reduction != "mean":
        raise KitError(f"unknown reduction {reduction!r}; use 'mean' or 'none'")
    return cos.mean()
