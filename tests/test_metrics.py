"""Metrics against known values, on real MNIST / Fashion-MNIST images."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch

from cvaelib.data import load_dataset, subset
from cvaelib.errors import KitError
from cvaelib.metrics import (MIN_FID_SAMPLES, classifier_fid, clip_score, conditional_accuracy, fid_from_features,
                             frechet_distance, inception_fid, mse, psnr, ssim, ssim_window)
from cvaelib.metrics import fid as fid_module


@pytest.fixture(scope="module")
def mnist_test(data_root):
    return load_dataset("mnist", data_root, "test")


@pytest.fixture(scope="module")
def judge(data_root):
    from cvaelib.classifier import get_classifier

    return get_classifier("mnist", data_root)


# --- MSE / PSNR / SSIM -----------------------------------------------------------------------------------------------
def test_mse_and_psnr_known_values():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.full((2, 1, 4, 4), 0.5)
    b[1] = 0.1
    assert mse(a, b, reduction="none").tolist() == pytest.approx([0.25, 0.01])
    assert float(mse(a, b)) == pytest.approx(0.13)
    assert psnr(a, b, reduction="none").tolist() == pytest.approx([10 * np.log10(4), 20.0])
    assert float(mse(b, b)) == 0.0
    assert float(psnr(b, b)) == float("inf")


def test_ssim_identical_real_images_is_one(mnist_test):
    x = mnist_test.float_images()[:64]
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, x, reduction="none").shape == (64,)
    # a different image is clearly less similar
    assert float(ssim(x, torch.roll(x, 1, dims=0))) < 0.5


def test_ssim_matches_scikit_image_on_real_mnist(mnist_test):
    from skimage.metrics import structural_similarity

    x = mnist_test.float_images()[:40]
    g = torch.Generator().manual_seed(0)
    pairs = {
        "noise": (x + 0.15 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "shift": torch.roll(x, shifts=(1, 2), dims=(2, 3)),
        "blur": torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1),
        "other digit": torch.roll(x, 1, dims=0),
    }
    for what, y in pairs.items():
        ours = ssim(x, y, reduction="none").numpy()
        ref = np.array([structural_similarity(a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=1.0) for a, b in zip(x, y)])
        assert np.abs(ours - ref).max() < 1e-3, what
        assert float(ssim(x, y)) == pytest.approx(ref.mean(), abs=1e-3)


def test_ssim_small_digits_uses_a_window_that_fits():
    x = load_dataset("digits", split="test").float_images()[:32]
    assert ssim_window(8, 8) == 7 and ssim_window(28, 28) == 11
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < float(ssim(x, torch.roll(x, 1, dims=0))) < 0.9


def test_image_metric_mistakes_raise_one_line_errors(mnist_test):
    x = mnist_test.float_images()[:4]
    with pytest.raises(KitError, match="divide by 255"):
        ssim(x * 255, x * 255)
    with pytest.raises(KitError, match="differ in shape"):
        mse(x, x[:2])
    with pytest.raises(KitError, match="float images"):
        ssim(mnist_test.images[:4], mnist_test.images[:4])


# --- FID -------------------------------------------------------------------------------------------------------------
def test_frechet_distance_known_value_for_a_shift():
    """Shifting every feature by 3 leaves the covariance unchanged, so FID = |shift|^2 = 9 * D."""
    f = torch.randn(3000, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(f, f + 3.0) == pytest.approx(9 * 8, rel=1e-6)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)
    # doubling: covariance 4S, so Tr(S + 4S - 2 * 2S) = Tr(S), plus the (small) shift of the mean
    expected = float(torch.var(f.double(), 0).sum() + f.double().mean(0).pow(2).sum())
    assert frechet_distance(f, 2 * f) == pytest.approx(expected, rel=1e-4)


def test_classifier_fid_of_a_set_with_itself_is_zero(mnist_test, judge):
    x = subset(mnist_test, 1000, seed=1).float_images()
    with pytest.warns(UserWarning, match="biased upward"):
        result = classifier_fid(x, x, classifier=judge)
    assert result.value == pytest.approx(0.0, abs=1e-3)
    assert (result.n_a, result.n_b, result.dims) == (1000, 1000, 128)
    assert not result.reliable and "n=1000/1000" in str(result)


def test_classifier_fid_separates_datasets(mnist_test, judge, data_root):
    perm = torch.randperm(len(mnist_test), generator=torch.Generator().manual_seed(0))
    half_a = mnist_test.take(perm[:1000]).float_images()
    half_b = mnist_test.take(perm[1000:2000]).float_images()
    fashion = subset(load_dataset("fashion-mnist", data_root, "test"), 1000, seed=0).float_images()
    noisy = (half_b + 0.3 * torch.randn(half_b.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    same = classifier_fid(half_a, half_b, classifier=judge, warn=False).value
    other = classifier_fid(half_a, fashion, classifier=judge, warn=False).value
    degraded = classifier_fid(half_a, noisy, classifier=judge, warn=False).value
    assert same < 10.0
    assert other > 20 * same and degraded > 5 * same


def test_fid_warns_only_below_the_threshold():
    f = torch.randn(MIN_FID_SAMPLES, 4, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=str(MIN_FID_SAMPLES)):
        fid_from_features(f[:100], f[100:200])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid_from_features(f, f).reliable


def test_inception_fid_offline_gives_one_line_error(monkeypatch, tmp_path):
    x = torch.rand(4, 1, 28, 28)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(fid_module, "_INCEPTION", {})
    with pytest.raises(KitError, match="pt_inception") as err:
        inception_fid(x, x, allow_download=False)
    assert "\n" not in str(err.value) and "classifier FID" in str(err.value)

    # a download attempt without internet: pytorch-fid's own download call fails
    import pytorch_fid.inception as pfi

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(pfi, "load_state_dict_from_url", offline)
    with pytest.raises(KitError, match="could not download") as err:
        inception_fid(x, x, device="cpu")
    assert "\n" not in str(err.value)


def test_inception_fid_with_cached_weights(mnist_test):
    if not fid_module.inception_weights_path().is_file():
        pytest.skip("pytorch-fid Inception weights not cached (offline machine); the offline error is tested above")
    x = mnist_test.float_images()[:64]
    assert inception_fid(x, x, device="cpu", warn=False).value == pytest.approx(0.0, abs=1e-2)


# --- conditional accuracy / CLIP score -------------------------------------------------------------------------------
def test_conditional_accuracy_known_values():
    pred = torch.tensor([0, 0, 1, 1, 2, 0])
    want = torch.tensor([0, 0, 1, 2, 2, 2])
    acc = conditional_accuracy(pred, want, 3, ["a", "b", "c"])
    assert acc["per_class"] == pytest.approx({"a": 1.0, "b": 1.0, "c": 1 / 3})
    assert acc["mean"] == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert acc["overall"] == pytest.approx(4 / 6)
    with pytest.raises(KitError):
        conditional_accuracy(pred, want[:3])


def test_conditional_accuracy_real_labels_vs_shuffled(mnist_test, judge):
    from cvaelib.classifier import predict

    data = subset(mnist_test, 3000, seed=2)
    pred = predict(judge, data.float_images())
    right = conditional_accuracy(pred, data.labels, 10)
    shuffled = data.labels[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))]
    chance = conditional_accuracy(pred, shuffled, 10)
    assert right["mean"] > 0.97
    assert chance["mean"] == pytest.approx(0.1, abs=0.03)
    assert len(chance["per_class"]) == 10


def test_clip_score_is_the_cosine():
    e = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    assert float(clip_score(e, 3 * e)) == pytest.approx(1.0, abs=1e-6)
    assert float(clip_score(e, -e)) == pytest.approx(-1.0, abs=1e-6)
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert float(clip_score(a, b)) == pytest.approx(0.0, abs=1e-7)
    assert clip_score(e, e[:1], reduction="none").shape == (5,)  # one prompt for all images
    with pytest.raises(KitError, match="different models"):
        clip_score(e, torch.randn(5, 8))
