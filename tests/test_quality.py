"""Quality bars of the default class-conditional VAE, judged by an independently trained classifier and SSIM.

The fast test (CI) trains the default CVAE (the model class's own defaults, as ``train --model cvae``) on a real MNIST
subset for a fixed number of epochs (~15 s on 2 cores), with bars that catch plausible regressions (its docstring).
The slow tests are the full-budget acceptance bars; they run only with ``CVAELIB_SLOW=1`` (about 3 minutes on 2 free
cores):

* MNIST, ``train --max-seconds 60``: samples of each class recognised as that class >= 95 %, and 1,000 test images
  re-decoded with another class judged as the new class >= 90 %;
* Fashion-MNIST, ``train --epochs 10``: test reconstruction SSIM >= 0.80, samples >= 85 % class-correct and label
  swap >= 90 %.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from cvaelib.classifier import get_classifier, predict
from cvaelib.cli import train_run
from cvaelib.checkpoint import load_model
from cvaelib.data import load_dataset, subset
from cvaelib.metrics import classifier_fid, label_swap
from cvaelib.models import ConditionalVAE
from cvaelib.train import fit

slow = pytest.mark.skipif(os.environ.get("CVAELIB_SLOW") != "1", reason="full-budget bar: set CVAELIB_SLOW=1")


def mean_ssim(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window, sigma 1.5, as in Wang et al. 2004) between images and their reconstructions."""
    recon = model.reconstruct(images, labels)
    return float(np.mean([structural_similarity(a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=1.0)
                          for a, b in zip(images, recon)]))


def class_accuracy(model, classifier, per_class: int = 100, seed: int = 1) -> tuple[float, list[float]]:
    """Fraction of prior samples the judge puts in the requested class: overall and per class."""
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    samples = model.sample(len(labels), labels, generator=torch.Generator().manual_seed(seed))
    hit = (predict(classifier, samples) == labels).float()
    return float(hit.mean()), [float(hit[labels == k].mean()) for k in range(model.num_classes)]


#: a plausible regression to switch on by hand, to see the CI-sized test fail (see its docstring)
REGRESSION = os.environ.get("CVAELIB_QUALITY_REGRESSION", "")
REGRESSIONS = ("", "condition", "beta", "prior")
#: bars of the CI-sized test, each between the default and the regression it catches (measured: its docstring)
SSIM_BAR, SAMPLES_BAR, SWAP_BAR, GAIN_BAR = 0.845, 0.60, 0.60, 0.92


def swap_rate(model, classifier, images: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Share of test images re-decoded with another class that the judge sees as that new class."""
    swapped, new = label_swap(model, images, labels, seed=seed)
    return float((predict(classifier, swapped) == new).float().mean())


def prior_gain(model, classifier, real: torch.Tensor, n: int = 1000, seed: int = 2) -> float:
    """classifier-FID of the model's samples / that of the same decoder fed z ~ N(0, I): below 1 when the sampling
    prior puts codes where the decoder learnt to decode."""
    labels = torch.arange(n) % model.num_classes
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        own = model.sample(n, labels, generator=g)
        normal = model.decode_images(torch.randn(n, model.latent_dim, generator=g), labels)
    return (classifier_fid(own, real, classifier, warn=False).value
            / classifier_fid(normal, real, classifier, warn=False).value)


def test_default_cvae_quality_on_an_mnist_subset(data_root):
    """CI-sized quality bars of the default CVAE: the class's own defaults, learning rate and batch size (as
    ``train --model cvae``), 12,000 real MNIST training images, 6 epochs (~15 s on 2 cores), judged by the kit's
    classifier on 1,000 test images (500 for SSIM).  "prior gain" is :func:`prior_gain`: the classifier-FID of the
    model's samples over that of N(0, I) codes through the same decoder.

    Each bar is set between the default and a plausible regression; ``CVAELIB_QUALITY_REGRESSION=<name> pytest
    tests/test_quality.py -k subset`` switches one on, and the test then fails.  Measured on a 2-core CPU:

    ====================================  ==========  ==========  ==========  ==========
    run                                   SSIM        samples     label swap  prior gain
    ====================================  ==========  ==========  ==========  ==========
    default                               0.867       87.1 %      84.6 %      0.81
    ``condition``: decoder sees class 0   0.847       **9.7 %**   **0.8 %**   0.21
    ``beta``: beta x 10 (0.2)             **0.820**   89.9 %      87.6 %      0.83
    ``prior``: no fitted prior (N(0, I))  0.867       95.3 %      84.6 %      **1.01**
    bar                                   >= 0.845    >= 60 %     >= 60 %     <= 0.92
    ====================================  ==========  ==========  ==========  ==========

    (Without its prior the decoder's samples are *more* often class-correct here - N(0, I) codes carry no class of
    their own - but they sit where the decoder has not learnt to draw: their FID is what gives the prior away.)
    """
    assert REGRESSION in REGRESSIONS, f"CVAELIB_QUALITY_REGRESSION must be one of {REGRESSIONS[1:]}"
    train = subset(load_dataset("mnist", data_root, "train"), 12_000, seed=0)
    test = subset(load_dataset("mnist", data_root, "test"), 1_000, seed=0)
    x, y = test.float_images(), test.labels
    torch.manual_seed(0)
    model = ConditionalVAE(train.shape, train.num_classes,
                           **{"beta": {"beta": 0.2}, "prior": {"prior": "standard"}}.get(REGRESSION, {}))
    if REGRESSION == "condition":  # the decoder is always told class 0: the label never reaches the image
        model.condition_vector = lambda c: ConditionalVAE.condition_vector(model, torch.zeros_like(c))
    fit(model, train, epochs=6, lr=model.recommended_lr, batch_size=model.recommended_batch_size,
        lr_schedule="cosine", progress=False, device="cpu")
    model.eval()
    judge = get_classifier("mnist", data_root)
    ssim = mean_ssim(model, x[:500], y[:500])
    acc, per_class = class_accuracy(model, judge)
    swap = swap_rate(model, judge, x, y)
    gain = prior_gain(model, judge, x)
    print(f"SSIM {ssim:.3f}, samples {acc:.1%}, label swap {swap:.1%}, prior gain {gain:.2f}")
    assert ssim >= SSIM_BAR, ssim
    assert acc >= SAMPLES_BAR, (acc, per_class)
    assert swap >= SWAP_BAR, swap
    assert gain <= GAIN_BAR, gain


@pytest.mark.slow
@slow
def test_mnist_60_seconds_samples_are_recognised(data_root, tmp_path):
    train_run("cvae", "mnist", tmp_path, data_root, epochs=10, max_seconds=60.0, quiet=True)
    model = load_model(tmp_path, expect="cvae")
    judge = get_classifier("mnist", data_root)
    acc, per_class = class_accuracy(model, judge, per_class=200)
    assert acc >= 0.95, (acc, per_class)
    test = load_dataset("mnist", data_root, "test")
    assert swap_rate(model, judge, test.float_images()[:1000], test.labels[:1000]) >= 0.90


@pytest.mark.slow
@slow
def test_fashion_10_epochs_sharp_reconstructions_and_recognisable_samples(data_root, tmp_path):
    train_run("cvae", "fashion-mnist", tmp_path, data_root, epochs=10, quiet=True)
    model = load_model(tmp_path, expect="cvae")
    test = load_dataset("fashion-mnist", data_root, "test").take(slice(0, 2000))
    ssim = mean_ssim(model, test.float_images(), test.labels)
    judge = get_classifier("fashion-mnist", data_root)
    acc, per_class = class_accuracy(model, judge, per_class=200)
    assert ssim >= 0.80, ssim
    assert acc >= 0.85, (acc, per_class)
    assert swap_rate(model, judge, test.float_images(), test.labels) >= 0.90
