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


# --- the fit terms (cvaelib.guided_objectives) and what optimise_latent does with them --------------------------------
def test_contrastive_loss_is_clips_classification_loss_and_stops_pushing_once_sure():
    import torch.nn.functional as F

    from cvaelib.guided_objectives import contrastive_loss, cosine_loss

    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(6, 16, generator=g), dim=-1)
    texts = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    logp = torch.log_softmax(feats @ texts.T / 0.1, dim=1)[:, 0]
    assert torch.isclose(contrastive_loss(feats, texts, tau=0.1), -logp.mean())
    assert torch.isclose(cosine_loss(feats, texts), -(feats @ texts[0]).mean())
    # d loss / d cos_0 = (p_0 - 1) / (tau * V): large while CLIP hesitates, ~0 once the prompt wins by far
    for margin, big in ((0.0, True), (5.0, False)):
        sims = torch.tensor([[margin, 0.0, 0.0, 0.0]], requires_grad=True)
        target = torch.zeros(1, dtype=torch.long)
        F.cross_entropy(sims / 0.1, target).backward()
        assert (abs(float(sims.grad[0, 0])) > 1.0) == big


def test_weighted_prompts_parse_attract_and_repel():
    import math

    import torch.nn.functional as F

    from cvaelib.guided_objectives import parse_weighted_prompts, spherical_distance, weighted_prompt_loss

    assert parse_weighted_prompts("a handwritten seven:1 | a handwritten one:-0.5|thick") == [
        ("a handwritten seven", 1.0), ("a handwritten one", -0.5), ("thick", 1.0)]
    assert parse_weighted_prompts("the digit: 7:2") == [("the digit: 7", 2.0)]
    for bad, says in (("", "empty"), (":1", "no text"), ("a one:-1", "positive weight")):
        with pytest.raises(KitError, match=says):
            parse_weighted_prompts(bad)
    a = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    angle = torch.arccos((a @ a.T).clamp(-1, 1))
    assert torch.allclose(spherical_distance(a, a), 0.5 * angle ** 2, atol=1e-3)
    # one image feature between two texts: a positive weight pulls it toward text 0, a negative one pushes it away
    t = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    f = F.normalize(torch.tensor([[1.0, 1.0]]), dim=-1).requires_grad_(True)
    weighted_prompt_loss(f, t, torch.tensor([1.0, -1.0])).backward()
    assert float(f.grad[0, 0]) < 0 < float(f.grad[0, 1])  # gradient descent moves it toward text 0, away from 1
    assert math.isclose(float(weighted_prompt_loss(f.detach(), t, torch.tensor([1.0, 0.0]))), 0.5 * (math.pi / 4) ** 2,
                        rel_tol=1e-4)


def test_optimise_latent_records_its_settings_and_takes_your_loss(tiny):
    from cvaelib.guided_objectives import contrastive_loss

    torch.manual_seed(0)
    w = torch.randn(8, 784) * 0.3

    def decoder_fn(z):
        return torch.sigmoid(z @ w).view(-1, 1, 28, 28)

    z0 = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    negatives = ["a handwritten seven", "a handwritten three"]
    built_in = optimise_latent(decoder_fn, tiny, "a handwritten one", z0, steps=5, lr=0.1, n_augment=2,
                               negatives=negatives, tau=0.1)
    assert built_in.settings["loss"] == "contrastive" and built_in.settings["n_augment"] == 2
    assert built_in.settings["prompt"] == "a handwritten one" and built_in.settings["negatives"] == negatives

    def my_loss(f, t):
        return contrastive_loss(f, t, tau=0.1)

    mine = optimise_latent(decoder_fn, tiny, "a handwritten one", z0, steps=5, lr=0.1, n_augment=2,
                           negatives=negatives, loss_fn=my_loss)
    assert mine.settings["loss"] == "my_loss" and torch.allclose(mine.images, built_in.images)
    plain = optimise_latent(decoder_fn, tiny, "a handwritten one", z0, steps=5, lr=0.1, n_augment=2)
    assert plain.settings["loss"] == "cosine" and not torch.allclose(plain.images, built_in.images)


def test_weighted_prompts_steer_a_vqvae_decoder(mnist, tiny):
    """VQGAN+CLIP in small: the code grid of a VQ-VAE moves toward the positive prompt and away from the negative."""
    torch.manual_seed(0)
    vq = VQVAE(num_classes=0, num_codes=64, prior_epochs=0)
    fit(vq, mnist, epochs=1, lr=2e-3, batch_size=32, progress=False)
    vq.eval()
    prompts = [("a handwritten zero", 1.0), ("a handwritten six", -1.0)]
    res = guide_model(vq, tiny, prompts, n=4, steps=30, n_augment=2, start="random", seed=0)
    assert res.settings["loss"] == "weighted" and res.settings["prompt"] == prompts
    t = tiny.encode_text(["a handwritten zero", "a handwritten six"])
    start, end = (tiny.encode_images(x) @ t.T for x in (res.frames[0], res.images))
    assert float(end[:, 0].mean()) > float(start[:, 0].mean()) + 0.05  # toward "zero"
    assert float((end[:, 0] - end[:, 1]).mean()) > float((start[:, 0] - start[:, 1]).mean())  # zero beats six more
    with pytest.raises(KitError, match="negative weights"):
        guide_model(vq, tiny, prompts, n=1, steps=1, start="random", negatives=["a handwritten one"])
