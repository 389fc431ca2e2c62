"""Looking at latent spaces (lesson 04): 2-D embeddings (t-SNE, PCA), class separability scores, side-by-side plots.

The lesson's claim, from the kit's sources: a VAE's latent space clusters by class, because nothing else tells the
decoder which digit to draw; a CVAE is *given* the class, so its z need not encode it and holds within-class style
instead.  A picture can mislead (t-SNE invents clusters and hides distances), so each panel carries two numbers
computed in the latent space itself, not in the 2-D picture:

* k-NN accuracy - how often the majority class of a code's k nearest neighbours is its own class (cross-validated);
* silhouette - how much closer codes are to their own class than to the nearest other class (-1 .. 1).

t-SNE: van der Maaten & Hinton (2008), JMLR 9.  The fast path uses openTSNE (Poličar et al. 2024, JSS 109) when
it is installed: Barnes-Hut gradients up to 10,000 codes and FFT-interpolated ones above (Linderman et al. 2019,
Nature Methods 16), with fewer iterations and one thread (see :data:`TSNE_SETTINGS`); scikit-learn's Barnes-Hut
t-SNE otherwise.  ``benchmarks/tsne.py`` measures it against scikit-learn's defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import KitError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("tsne", "pca")

#: the measured fast settings (see benchmarks/tsne.py): 100 + 250 iterations instead of openTSNE's 250 + 500 or
#: scikit-learn's 1,000.  With the learning rate N / 12 (Belkina et al. 2019, "Automated optimized parameters for
#: t-SNE", Nat. Commun. 10) and PCA initialisation (global layout kept) the KL divergence of a few thousand codes
#: has flattened by then; trustworthiness equals the long runs' to 3 decimals.  Exact neighbours: cheaper than an
#: index for a few thousand low-dimensional codes, and identical on every machine.  One thread: each iteration is a
#: few milliseconds of work followed by a barrier, so on a 2-core machine that is doing anything else (or Colab's
#: two hyper-threads) a second thread waits more than it helps - measured 1.9x slower for 5,000 codes.
#: Gradient method "auto": Barnes-Hut up to 10,000 codes (measured 7.0 s CPU vs 9.3 s for FFT at 5,000), FFT above.
TSNE_SETTINGS: dict[str, Any] = {"perplexity": 30.0, "early_exaggeration_iter": 100, "n_iter": 250,
                                 "method": "auto", "n_jobs": 1}


@torch.no_grad()
def latents(model, images: Tensor, labels: Tensor | None = None, batch_size: int = 1024) -> Tensor:
    """Deterministic codes ``[N, D]`` (posterior means for VAEs, z for an AE) on CPU, batched.

    ``labels`` (int64 ``[N]``) are required for a class-conditional model: its encoder sees the class.
    """
    from ..interpolate import encode

    if images.dim() != 4:
        raise KitError(f"images must be [N, C, H, W], got {list(images.shape)}")
    needs = model.condition == "label"
    if needs and labels is None:
        raise KitError(f"this {model.name} model is class-conditional: pass the labels of the images")
    out = []
    for i in range(0, len(images), batch_size):
        c = labels[i:i + batch_size] if needs else None
        out.append(encode(model, images[i:i + batch_size], c).float().cpu())
    return torch.cat(out)


def _as_numpy(z: Tensor | np.ndarray) -> np.ndarray:
    z = z.detach().cpu().numpy() if isinstance(z, Tensor) else np.asarray(z)
    if z.ndim != 2 or len(z) < 3:
        raise KitError(f"codes must be a [N, D] array with N >= 3, got shape {list(z.shape)}")
    if not np.isfinite(z).all():
        raise KitError("codes contain NaN or inf; the model may have diverged (check its training loss)")
    return np.ascontiguousarray(z, dtype=np.float32)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def pca_2d(z: Tensor | np.ndarray) -> np.ndarray:
    """The first two principal components of the codes ``[N, 2]`` (instant; linear, so clusters may overlap)."""
    from sklearn.decomposition import PCA

    x = _as_numpy(z)
    return PCA(n_components=2, random_state=0).fit_transform(x).astype(np.float32)


def tsne_2d(z: Tensor | np.ndarray, seed: int = 0, perplexity: float | None = None, backend: str = "auto",
            n_jobs: int | None = None, **options: Any) -> np.ndarray:
    """t-SNE embedding ``[N, 2]`` of codes ``z``, fast enough for 5,000 codes in a few seconds on 2 cores.

    Args:
        seed: fixes the result (same seed, same picture).
        perplexity: effective number of neighbours (default 30, lowered automatically for tiny inputs).
        backend: ``"opentsne"`` (FFT-accelerated), ``"sklearn"`` (Barnes-Hut) or ``"auto"`` (openTSNE if
            installed).
        n_jobs: threads (default 1 for openTSNE, measured fastest on 2 shared cores; all cores for scikit-learn's
            neighbour search).
        options: override :data:`TSNE_SETTINGS` (``n_iter``, ``early_exaggeration_iter``, ``method``).
    """
    x = _as_numpy(z)
    settings = {**TSNE_SETTINGS, **options}
    perp = float(perplexity if perplexity is not None else settings.pop("perplexity"))
    settings.pop("perplexity", None)
    perp = min(perp, max(2.0, (len(x) - 1) / 3.0))  # t-SNE needs 3 * perplexity < N
    threads = settings.pop("n_jobs", 1)
    if backend not in ("auto", "opentsne", "sklearn"):
        raise KitError(f"unknown t-SNE backend {backend!r}; choose auto, opentsne or sklearn")
    if backend in ("auto", "opentsne"):
        try:
            import openTSNE
        except ImportError:
            if backend == "opentsne":
                raise KitError("openTSNE is not installed: pip install openTSNE (or use backend='sklearn')") from None
        else:
            return _opentsne(openTSNE, x, seed, perp, n_jobs or threads, settings)
    from sklearn.manifold import TSNE

    # scikit-learn always spends its first 250 iterations exaggerated; 250 more converge (FINDINGS: max_iter=500
    # is as trustworthy as the default 1,000 at half the time).
    iters = 250 + int(settings["n_iter"])
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed,
                max_iter=iters, n_jobs=n_jobs or _cores())
    return tsne.fit_transform(x).astype(np.float32)


def _opentsne(openTSNE, x: np.ndarray, seed: int, perp: float, n_jobs: int, settings: dict) -> np.ndarray:
    import logging

    # Exact neighbours: for a few thousand codes of <= 64 dims this is faster than building an Annoy index and
    # keeps results identical across machines.
    neighbors = "exact" if len(x) <= 20_000 else "auto"
    tsne = openTSNE.TSNE(n_components=2, perplexity=perp, initialization="pca", random_state=seed, n_jobs=n_jobs,
                         neighbors=neighbors, negative_gradient_method=settings.get("method", "auto"),
                         early_exaggeration_iter=int(settings["early_exaggeration_iter"]),
                         n_iter=int(settings["n_iter"]), verbose=False)
    logging.getLogger("openTSNE").setLevel(logging.ERROR)
    return np.asarray(tsne.fit(x), dtype=np.float32)


def embed_2d(z: Tensor | np.ndarray, method: str = "tsne", seed: int = 0, **options: Any) -> np.ndarray:
    """2-D picture of codes: ``"tsne"`` (:func:`tsne_2d`) or ``"pca"`` (:func:`pca_2d`, the quick alternative)."""
    if method not in METHODS:
        raise KitError(f"unknown embedding {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "pca":
        return pca_2d(z)
    return tsne_2d(z, seed=seed, **options)


def _labels_np(labels, n: int) -> np.ndarray:
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if y.shape != (n,):
        raise KitError(f"need one label per code: {n} codes but labels of shape {list(y.shape)}")
    return y.astype(np.int64)


def knn_accuracy(z: Tensor | np.ndarray, labels, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a k-nearest-neighbour classifier on the codes (chance = 1 / classes).

    High: codes of one class sit together (the class can be read off z).  Near chance: z does not say the class.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = _as_numpy(z)
    y = _labels_np(labels, len(x))
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if smallest < 2:
        raise KitError("every class needs at least 2 codes for a cross-validated k-NN score; use more images")
    folds = max(2, min(folds, smallest))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), x, y, cv=cv)
    return float(scores.mean())


def silhouette(z: Tensor | np.ndarray, labels, max_points: int = 5000, seed: int = 0) -> float:
    """Silhouette of the classes in latent space (-1..1; > 0 means codes are nearer their own class)."""
    from sklearn.metrics import silhouette_score

    x = _as_numpy(z)
    y = _labels_np(labels, len(x))
    if len(np.unique(y)) < 2:
        raise KitError("silhouette needs codes from at least 2 classes")
    size = min(max_points, len(x))
    return float(silhouette_score(x, y, sample_size=size if size < len(x) else None, random_state=seed))


def latent_scores(z: Tensor | np.ndarray, labels, k: int = 5) -> dict[str, float]:
    """``{"knn": accuracy, "silhouette": s}`` of codes ``z`` with respect to ``labels``."""
    return {"knn": knn_accuracy(z, labels, k=k), "silhouette": silhouette(z, labels)}


def compare_latents(models: Mapping[str, Any], images: Tensor, labels: Tensor, method: str = "tsne",
                    seed: int = 0) -> dict[str, dict[str, Any]]:
    """Encode the same images with every model; return per model its codes, 2-D embedding and scores.

    Returns ``{name: {"z": [N, D] tensor, "xy": [N, 2] array, "knn": float, "silhouette": float}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        z = latents(model, images, labels)
        out[name] = {"z": z, "xy": embed_2d(z, method, seed=seed), **latent_scores(z, labels)}
    return out


def plot_latents(results: Mapping[str, Mapping[str, Any] | np.ndarray], labels, class_names: Sequence[str],
                 method: str = "tsne", title: str | None = None, point_size: float = 4.0) -> "Figure":
    """Side-by-side scatter plots of 2-D embeddings coloured by class, one legend of class names.

    Args:
        results: ``{model name: {"xy": [N, 2], "knn": ..., "silhouette": ...}}`` (from :func:`compare_latents`)
            or ``{model name: [N, 2] array}``.
        labels: class id of each point.
        class_names: legend text for each class id.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not results:
        raise KitError("nothing to plot: pass at least one model's embedding")
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1.6, 4.4), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (name, res) in zip(axes[0], results.items()):
        xy = np.asarray(res["xy"] if isinstance(res, Mapping) else res)
        y = _labels_np(labels, len(xy))
        ax.scatter(xy[:, 0], xy[:, 1], c=[cmap(int(k) % cmap.N) for k in y], s=point_size, linewidths=0, alpha=0.8)
        head = name
        if isinstance(res, Mapping) and "knn" in res:
            head += f"\nk-NN acc. {100 * res['knn']:.1f}%"
            if "silhouette" in res:
                head += f" · silhouette {res['silhouette']:.2f}"
        ax.set_title(head, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], marker="o", linestyle="", color=cmap(i % cmap.N), label=str(c))
               for i, c in enumerate(class_names)]
    fig.legend(handles=handles, loc="center right", fontsize=8, frameon=False, title="class")
    label = {"tsne": "t-SNE", "pca": "PCA"}.get(method, method)
    fig.suptitle(title or f"{label} of latent codes (same test images for every model)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 1.4 / (4.2 * n + 1.6), 1))
    return fig
