"""CLIP-guided latent optimisation: gradients through CLIP, augmentations, and that optimisation raises the CLIP
similarity of real trained decoders (label CVAE on MNIST, VQ-VAE) with the cached test TinyCLIP."""

from __future__ import annotations

import pytest
import torch

from cvaelib.classifier import get_classifier, predict
from cvaelib.data import load_dataset, subset
from cvaelib.errors import KitError
from cvaelib.guided import augment, guide_model, image_features, optimise_latent, strip_figure
from cvaelib.models import ConditionalVAE, VQVAE
from cvaelib.train import fit
from tiny_models import tiny_clip


@pytest.fixture(scope="module")
def tiny(data_root):
    return tiny_clip(data_root)


@pytest.fixture(scope="module")
def mnist(data_root):
    return subset(load_dataset("mnist", data_root, "train"), 4000, seed=0)


@pytest.fixture(scope="module")
def cvae(mnist):
    torch.manual_seed(0)
    model = ConditionalVAE(num_classes=10, latent_dim=16)
    fit(model, mnist, epochs=3, lr=2e-3, batch_size=64, progress=False)
    return model.eval()


def test_augment_views_and_gradients(tiny):
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    views = augment(x, 4, torch.Generator().manual_seed(0))
    assert views.shape == (12, 1, 28, 28)
    assert torch.equal(views[:3], x)  # the first view is the image itself
    assert float(views.detach().min()) >= 0 and float(views.detach().max()) <= 1
    feats = image_features(tiny, views)
    assert feats.shape == (12, tiny.embed_dim)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(12), atol=1e-5)
    # encode_images runs without gradients; image_features must carry them back to the pixels
    feats.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    # and it agrees with the encoder's own (no-grad) embeddings
    assert torch.allclose(image_features(tiny, x.detach()), tiny.encode_images(x.detach()), atol=1e-4)


DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_optimisation_increases_clip_similarity_label_cvae(cvae, tiny, data_root):
    """No label given: CLIP picks the class (contrasted with the other digits), then z climbs the similarity."""
    prompts = [f"a handwritten {w}" for w in DIGITS]
    negatives = [p for i, p in enumerate(prompts) if i != 7]
    res = guide_model(cvae, tiny, prompts[7], n=8, steps=30, n_augment=4, seed=0, negatives=negatives)
    print(f"similarity {res.similarity[0]:.3f} -> {res.similarity[-1]:.3f}")
    # the start is drawn from the CVAE's fitted prior of the chosen class, already a good seven (~0.75): the
    # optimisation still has to climb (from N(0, I) codes the same run goes ~0.2 -> ~0.6)
    assert res.similarity[-1] > res.similarity[0] + 0.01
    assert res.images.shape == (8, 1, 28, 28)
    assert res.condition.tolist() == [7] * 8  # the class CLIP chose
    judge = get_classifier("mnist", data_root)
    start, end = (float(predict(judge, f).eq(7).float().mean()) for f in (res.frames[0], res.images))
    assert end >= 0.75 and end >= start
    assert res.frame_steps[0] == 0 and res.frame_steps[-1] == 30 and len(res.frames) == 8
    strip_figure(res, rows=2, title="a handwritten seven")


def test_fixed_label_and_prior_weight(cvae, tiny):
    """With the class fixed only z moves; a heavy prior weight holds the similarity gain back."""
    light = guide_model(cvae, tiny, "a thick handwritten three", n=4, steps=20, n_augment=2, label=3,
                        prior_weight=0.0, seed=1)
    heavy = guide_model(cvae, tiny, "a thick handwritten three", n=4, steps=20, n_augment=2, label=3,
                        prior_weight=50.0, seed=1)
    assert light.similarity[-1] > light.similarity[0]
    assert light.condition.tolist() == [3] * 4
    assert heavy.gain < light.gain


def test_optimisation_increases_clip_similarity_vqvae(mnist, tiny):
    torch.manual_seed(0)
    vq = VQVAE(num_classes=10, num_codes=64, prior_epochs=0)
    fit(vq, mnist, epochs=1, lr=2e-3, batch_size=32, progress=False)
    res = guide_model(vq.eval(), tiny, "a handwritten zero", n=4, steps=30, n_augment=2, start="random", seed=0)
    assert res.similarity[-1] > res.similarity[0] + 0.05
    assert res.latents.shape == (4, vq.latent_dim, 7, 7)
    with pytest.raises(KitError, match="label"):
        guide_model(vq, tiny, "a zero", steps=1)  # a class-conditional prior start needs a label


def test_optimise_latent_with_any_decoder_and_errors(tiny):
    """The loop itself takes any differentiable decoder: here a fixed random linear 'decoder'."""
    torch.manual_seed(0)
    w = torch.randn(8, 784) * 0.3

    def decoder_fn(z):
        return torch.sigmoid(z @ w).view(-1, 1, 28, 28)

    res = optimise_latent(decoder_fn, tiny, "a handwritten one", torch.randn(3, 8), steps=20, lr=0.1, n_augment=2)
    assert len(res.similarity) == 21 and res.gain > 0
    with pytest.raises(KitError, match="prompt is empty"):
        optimise_latent(decoder_fn, tiny, "  ", torch.randn(1, 8), steps=1)
    with pytest.raises(KitError, match="ClipEncoder"):
        optimise_latent(decoder_fn, object(), torch.randn(4), torch.randn(1, 8), steps=1)
    with pytest.raises(KitError, match="z_init"):
        optimise_latent(decoder_fn, tiny, "a one", torch.randn(8), steps=1)
