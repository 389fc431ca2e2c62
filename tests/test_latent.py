"""Latent pictures and the numbers beside them, on models trained on real MNIST and Fashion-MNIST.

The lesson's claim (from the kit's sources): a VAE's latent space clusters by class, a CVAE's does not need to,
because the class is given to its decoder.  These tests measure it: k-NN accuracy and silhouette in latent space.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvaelib import KitError
from cvaelib.viz.latent import (compare_latents, embed_2d, knn_accuracy, latent_scores, latents, pca_2d,
                                plot_latents, silhouette, tsne_2d)
from tiny_models import eval_images, tiny_model

N = 1000  # test images per dataset


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def trio(request, data_root):
    ds = request.param
    x, y, names = eval_images(ds, data_root, N, seed=2)
    models = {k.upper(): tiny_model(k, ds, data_root) for k in ("ae", "vae", "cvae")}
    return {"dataset": ds, "x": x, "y": y, "names": names, "models": models,
            "z": {k: latents(m, x, y) for k, m in models.items()}}


def test_latents_are_posterior_means(trio):
    vae, x = trio["models"]["VAE"], trio["x"][:10]
    z = latents(vae, x, batch_size=3)
    assert z.shape == (10, 8) and z.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(z, vae.encode(x)[0], atol=1e-5)
    cvae = trio["models"]["CVAE"]
    with pytest.raises(KitError, match="pass the labels"):
        latents(cvae, x)
    # a CVAE's code depends on the class it is told
    assert not torch.allclose(latents(cvae, x, torch.zeros(10, dtype=torch.long)),
                              latents(cvae, x, torch.ones(10, dtype=torch.long)))


def test_vae_latent_clusters_by_class_cvae_latent_does_not(trio):
    y = trio["y"]
    scores = {k: latent_scores(z, y) for k, z in trio["z"].items()}
    print(trio["dataset"], {k: {m: round(v, 3) for m, v in s.items()} for k, s in scores.items()})
    floor = 0.65 if trio["dataset"] == "mnist" else 0.6  # tiny models, seconds of training (chance: 0.10)
    assert scores["VAE"]["knn"] > floor and scores["AE"]["knn"] > floor
    # the measured point of the lesson: the VAE's classes form clusters (silhouette > 0), the CVAE's do not
    # (silhouette < 0), and the class is harder to read off the CVAE's z.  Measured on these tiny models: MNIST
    # k-NN 0.79 -> 0.50, silhouette 0.12 -> -0.03; Fashion k-NN 0.72 -> 0.66 (garment shape is "style" that still
    # tells the class), silhouette 0.10 -> -0.03.
    assert scores["VAE"]["silhouette"] > 0.03 and scores["AE"]["silhouette"] > 0.03
    assert scores["CVAE"]["silhouette"] < 0.0
    assert scores["CVAE"]["knn"] < scores["VAE"]["knn"] - (0.15 if trio["dataset"] == "mnist" else 0.02)


def test_knn_and_silhouette_reference_points(trio):
    z, y = trio["z"]["VAE"], trio["y"]
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert abs(knn_accuracy(z, shuffled) - 0.1) < 0.05  # chance for 10 classes
    assert silhouette(z, shuffled) < 0.02 < silhouette(z, y)
    assert knn_accuracy(np.eye(10)[y.numpy()] + 0.01 * np.random.default_rng(0).normal(size=(N, 10)), y) == 1.0
    with pytest.raises(KitError, match="one label per code"):
        knn_accuracy(z, y[:-1])
    with pytest.raises(KitError, match="at least 2 codes"):
        knn_accuracy(z[:11], torch.arange(11))
    with pytest.raises(KitError, match="NaN"):
        silhouette(torch.full((5, 2), float("nan")), torch.tensor([0, 0, 1, 1, 1]))


def test_tsne_is_faithful_deterministic_and_keeps_classes(trio):
    from sklearn.manifold import trustworthiness

    z, y = trio["z"]["VAE"][:600], trio["y"][:600]
    xy = tsne_2d(z, seed=0)
    assert xy.shape == (600, 2) and np.isfinite(xy).all()
    assert np.allclose(xy, tsne_2d(z, seed=0))  # same seed, same picture
    assert trustworthiness(z.numpy(), xy, n_neighbors=5) > 0.95
    # the 2-D picture keeps most of the class structure measured in 8-D
    assert knn_accuracy(xy, y) > knn_accuracy(z, y) - 0.08
    if trio["dataset"] == "mnist":  # the fallback backend once is enough (it is the slow one)
        sk = tsne_2d(z, seed=0, backend="sklearn")
        tw_sk, tw_fast = (trustworthiness(z.numpy(), e, n_neighbors=5) for e in (sk, xy))
        assert abs(tw_sk - tw_fast) < 0.02
    tiny = tsne_2d(z[:20], seed=0)  # perplexity is lowered for tiny inputs instead of failing
    assert tiny.shape == (20, 2)
    with pytest.raises(KitError, match="unknown t-SNE backend"):
        tsne_2d(z, backend="umap")


def test_pca_and_embed_2d(trio):
    z = trio["z"]["VAE"]
    xy = pca_2d(z)
    assert xy.shape == (N, 2) and np.allclose(xy, embed_2d(z, "pca"))
    # first axis carries the most variance
    assert xy[:, 0].var() >= xy[:, 1].var()
    with pytest.raises(KitError, match="unknown embedding"):
        embed_2d(z, "umap")
    with pytest.raises(KitError, match=r"\[N, D\]"):
        pca_2d(torch.zeros(5))


def test_side_by_side_plot_has_a_panel_per_model_and_a_legend(trio, tmp_path):
    n = 400
    x, y = trio["x"][:n], trio["y"][:n]
    res = compare_latents(trio["models"], x, y, method="pca")
    assert set(res) == {"AE", "VAE", "CVAE"} and res["VAE"]["xy"].shape == (n, 2)
    fig = plot_latents(res, y, trio["names"], method="pca")
    axes = [a for a in fig.axes if a.collections]
    assert len(axes) == 3
    assert [a.get_title().split("\n")[0] for a in axes] == ["AE", "VAE", "CVAE"]
    assert all("k-NN acc." in a.get_title() and "silhouette" in a.get_title() for a in axes)
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == list(trio["names"])
    fig.savefig(tmp_path / "latent.png")
    assert (tmp_path / "latent.png").stat().st_size > 10_000
    bare = plot_latents({"pca": res["VAE"]["xy"]}, y, trio["names"])
    assert len([a for a in bare.axes if a.collections]) == 1
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(KitError, match="nothing to plot"):
        plot_latents({}, y, trio["names"])
