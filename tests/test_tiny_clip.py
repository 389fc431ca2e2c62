"""TinyCLIP: generated captions, the CLIP tokenizer vocabulary, the ClipEncoder interface, zero-shot accuracy.

The TinyCLIP used here is trained for a fixed number of steps on real MNIST and cached in ``~/.cache/cvaelib``
(first run ~1 min on 2 CPU cores, later runs load it).  Zero-shot accuracy is measured with *held-out* prompt
templates on real test images.
"""

from __future__ import annotations

import random

import pytest
import torch

from cvaelib.clip import ClipEncoder, load_clip
from cvaelib.clip import captions as cap
from cvaelib.clip.tiny import (TinyClipEncoder, class_text_embeddings, load_tiny_clip, save_tiny_clip,
                               train_tiny_clip, zero_shot_accuracy)
from cvaelib.data import load_dataset, subset
from cvaelib.errors import CheckpointError, KitError
from tiny_models import tiny_clip


@pytest.fixture(scope="module")
def tiny_mnist(data_root) -> TinyClipEncoder:
    """The cached TinyCLIP that every CLIP test shares (``tiny_models.TINY_CLIP``)."""
    return tiny_clip(data_root)


def test_heldout_templates_are_unseen():
    for ds in ("mnist", "fashion-mnist"):
        train, held = set(cap.templates(ds)), set(cap.templates(ds, heldout=True))
        assert train and held and not train & held
        rng = random.Random(0)
        for k in range(10):
            text = cap.caption(ds, k, rng=rng)
            assert "{}" not in text and len(text) > 2


def test_captions_name_the_class_with_synonyms():
    rng = random.Random(1)
    texts = [cap.caption("fashion-mnist", 7, rng=rng) for _ in range(400)]
    said = " ".join(texts)
    for word in ("sneakers", "running shoes", "trainers", "a pair of"):
        assert word in said
    digits = [cap.caption("mnist", 3, rng=rng) for _ in range(300)]
    assert any("three" in t for t in digits) and any(" 3" in t or t.startswith("3") for t in digits)
    with pytest.raises(KitError, match="no caption vocabulary"):
        cap.caption("celeba", 0)


def test_descriptors_measure_the_image(data_root):
    data = subset(load_dataset("mnist", data_root, "train"), 3000)
    d = cap.image_descriptors("mnist", data.images, data.labels)
    ink = data.images.float().mean((1, 2, 3))
    for k in range(10):
        sel = data.labels == k
        thick, thin = ink[sel & (d["ink"] == 2)], ink[sel & (d["ink"] == 0)]
        assert thick.min() >= thin.max()  # tertiles within the class
    assert set(d["slant"].unique().tolist()) == {0, 1, 2}
    # a digit sheared to the right reads as right-leaning
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    for y in range(4, 24):
        img[0, 0, y, 14 + (14 - y) // 2] = 255
    both = torch.cat([img, img.flip(-1), img[:, :, :, :]]), torch.tensor([1, 1, 1])
    slant = cap.image_descriptors("mnist", *both)["slant"]
    assert slant[0] > slant[1]


def test_tiny_clip_is_a_clip_encoder(tiny_mnist, tmp_path):
    enc = tiny_mnist
    assert isinstance(enc, ClipEncoder) and enc.embed_dim == 64
    t = enc.encode_text(["a handwritten seven", "the number 3"])
    assert t.shape == (2, 64) and t.dtype == torch.float32
    torch.testing.assert_close(t.norm(dim=1), torch.ones(2))
    long = enc.encode_text(["a seven. " * 40], long_text="average")
    assert long.shape == (1, 64)
    x = torch.rand(3, 1, 28, 28)
    e = enc.encode_images(x)
    assert e.shape == (3, 64)
    torch.testing.assert_close(enc.encode_images(x.expand(-1, 3, -1, -1)), e)  # grey == grey as RGB
    assert enc.encode_images(torch.rand(2, 3, 56, 56)).shape == (2, 64)  # any size is resized
    # save / load round trip, and through load_clip("tiny:PATH")
    path = save_tiny_clip(enc, tmp_path / "t.pt")
    for again in (load_tiny_clip(path), load_clip(f"tiny:{path}", device="cpu")):
        torch.testing.assert_close(again.encode_text(["zero"]), enc.encode_text(["zero"]))
        torch.testing.assert_close(again.encode_images(x), e)
    with pytest.raises(CheckpointError, match="no TinyCLIP"):
        load_tiny_clip(tmp_path / "missing.pt")


def test_unknown_words_read_as_unk(tiny_mnist):
    model = tiny_mnist.model
    ids = tiny_mnist.tokenize(["zebra quantum"])  # words no caption uses
    own = model.own_ids(ids)
    eot = int(ids.argmax())
    assert (own[0, 1:eot] == 0).all()
    known = model.own_ids(tiny_mnist.tokenize(["seven"]))
    assert known[0, 1] > 0


def test_zero_shot_mnist_heldout_templates(tiny_mnist, data_root):
    test = subset(load_dataset("mnist", data_root, "test"), 1000, seed=1)
    acc, per_class = zero_shot_accuracy(tiny_mnist, test)
    assert acc >= 0.9, (acc, per_class)
    assert min(per_class) >= 0.7, per_class
    # a student's words land on the right class
    protos = class_text_embeddings(tiny_mnist, "mnist")
    for text, k in [("a handwritten seven", 7), ("the number 3", 3), ("zero", 0), ("a drawing of a five", 5)]:
        assert int((tiny_mnist.encode_text([text]) @ protos.T).argmax()) == k, text


def test_train_validates_and_learns_quickly(data_root):
    with pytest.raises(KitError, match="no caption vocabulary"):
        train_tiny_clip("digits", data_root, seconds=1)
    data = subset(load_dataset("fashion-mnist", data_root, "train"), 4000)
    enc = train_tiny_clip("fashion-mnist", data=data, seconds=3000, max_steps=40, batch_size=128, progress=False)
    assert enc.meta["steps"] == 40 and enc.meta["dataset"] == "fashion-mnist"
    test = subset(load_dataset("fashion-mnist", data_root, "test"), 500)
    acc, _ = zero_shot_accuracy(enc, test)
    assert acc > 0.35  # 40 steps on 4,000 images: far above chance (0.1) already


def test_cached_only_lookup_and_the_symmetric_clip_loss(tiny_mnist, data_root, tmp_path):
    """``get_tiny_clip(build=False)`` loads the cached model or returns None (never trains); ``clip_loss`` is CLIP's
    symmetric cross-entropy, lowest when every pair matches."""
    import math

    import torch.nn.functional as F

    from cvaelib.clip.tiny import clip_loss, get_tiny_clip
    from tiny_models import TINY_CLIP

    cached = get_tiny_clip("mnist", data_root, **TINY_CLIP, build=False)
    assert cached is not None and cached.weights_id == tiny_mnist.weights_id
    assert get_tiny_clip("mnist", data_root, **TINY_CLIP, build=False, cache_dir=tmp_path) is None
    assert not list(tmp_path.iterdir())  # nothing was trained or written
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    rows = F.cross_entropy(logits, torch.arange(3))
    cols = F.cross_entropy(logits.T, torch.arange(3))
    assert torch.isclose(clip_loss(logits), 0.5 * (rows + cols))
    assert math.isclose(float(clip_loss(torch.zeros(4, 4))), math.log(4), rel_tol=1e-6)  # chance: log B
    # real pairs: captions of test images with their own images score far below chance, shuffled ones do not
    test = subset(load_dataset("mnist", data_root, "test"), 64, seed=2)
    rng = random.Random(0)
    texts = [cap.caption("mnist", int(k), rng=rng) for k in test.labels]
    img, txt = tiny_mnist.encode_images(test.float_images()), tiny_mnist.encode_text(texts)
    scale = float(tiny_mnist.model.logit_scale.exp())
    same = (test.labels[:, None] == test.labels[None, :]).float() + torch.eye(64)
    matched = clip_loss(scale * txt @ img.T, same / same.sum(1, keepdim=True))
    shuffled = clip_loss(scale * txt[torch.randperm(64)] @ img.T)
    assert float(matched) < math.log(64) - 1 and float(shuffled) > math.log(64)  # ~1.9 and ~9.2 vs log 64 = 4.2
