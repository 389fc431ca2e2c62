"""Encoding with a ClipEncoder: batching, long text, tensor preprocessing, and the embedding cache (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import to_tensor

from cvaelib.clip import cached_image_embeddings, import_clip_module, load_clip, split_sentences, tokenize
from cvaelib.clip.cache import cache_files
from cvaelib.clip.synthetic import save_random_clip
from cvaelib.data import load_dataset
from cvaelib.errors import KitError

PROMPTS = [f"a {adj} {thing}" for adj in ("red", "small", "striped", "shiny", "dark") for thing in
           ("dress", "sneaker", "bag", "coat", "handwritten seven", "pullover with a hood", "pair of trousers")]


@pytest.fixture(scope="module")
def enc(tmp_path_factory):
    path = tmp_path_factory.mktemp("clipenc") / "tiny.pt"
    save_random_clip(path, "tiny", seed=1)
    return load_clip(str(path), device="cpu")


@pytest.fixture(scope="module")
def mnist(data_root):
    return load_dataset("mnist", root=data_root, split="test").images[:300]  # uint8 [300, 1, 28, 28]


# ---------------------------------------------------------------------- text
def test_batched_text_equals_one_forward_per_sentence(enc):
    batched = enc.encode_text(PROMPTS, batch_size=16)  # several batches, sorted by length inside
    one_by_one = torch.cat([enc.encode_text(p) for p in PROMPTS])
    assert batched.shape == (len(PROMPTS), enc.embed_dim) and batched.dtype == torch.float32
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    assert torch.allclose(batched.norm(dim=-1), torch.ones(len(PROMPTS)), atol=1e-5)
    # and equal to the untrimmed forward of the wrapped model on full 77-token rows
    with torch.no_grad():
        full = F.normalize(enc.model.encode_text(tokenize(PROMPTS)), dim=-1)
    assert torch.allclose(batched, full, atol=1e-5)
    # different prompts give different embeddings (no row mix-up when sorting by length)
    assert (batched @ batched.T).fill_diagonal_(0).max() < 0.9999


def test_tokenizer_is_clips_bpe_from_either_package():
    clip = import_clip_module()
    open_clip = pytest.importorskip("open_clip")
    texts = ["A photo of a CAT!", "  two   spaces\tand a tab", "ünïcödé café", "a handwritten digit 7"]
    ours = tokenize(texts)
    assert ours.dtype == torch.long and ours.shape == (4, 77)
    assert torch.equal(ours, clip.tokenize(texts).long())
    assert torch.equal(ours, open_clip.tokenize(texts).long())


def test_fast_ascii_tokenizer_path_equals_clips_encode():
    """Plain-ASCII texts skip ftfy/html cleaning (a no-op for them): ids must equal the tokenizer's own encode."""
    import random
    import string

    from cvaelib.clip import text as clip_text

    rng = random.Random(0)
    texts = ["It's a dog's life, isn't it?", "$5 @home #tag ~tilde {x} [y] (z) 'q' \"dq\" a-b_c", "123 4567.89",
             "  Two   SPACES\tand a tab\n", "<|endoftext|> inside", "a;b:c,d.e/f\\g|h", "", "&amp; goes slow path"]
    texts += ["".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40))) for _ in range(500)]
    tok = clip_text.bpe_tokenizer()
    for t in texts:
        assert list(clip_text._encode_ids_cached(t)) == tok.encode(t), repr(t)


def test_repeated_texts_are_encoded_once_and_returned_in_order(enc, monkeypatch):
    texts = ["a cat", "a dog", "a cat", "a red bus", "a dog", "a cat"]
    seen = []
    real = enc._encode_text_tokens
    monkeypatch.setattr(enc, "_encode_text_tokens", lambda t: seen.append(t.shape[0]) or real(t))
    emb = enc.encode_text(texts)
    assert sum(seen) == 3  # three distinct texts, one row each
    unique = enc.encode_text(["a cat", "a dog", "a red bus"])
    assert torch.allclose(emb, unique[[0, 1, 0, 2, 1, 0]], atol=1e-6)


def test_text_longer_than_77_tokens_does_not_crash(enc):
    long = "a very long description of a red dress " * 30  # ~270 tokens
    assert tokenize(long).shape == (1, 77) and tokenize(long)[0, -1].item() == 49407  # ends with end-of-text
    with pytest.raises(KitError, match="longer than CLIP's 77"):
        tokenize(long, truncate=False)
    emb = enc.encode_text([long, "a cat"])
    assert emb.shape == (2, enc.embed_dim) and torch.isfinite(emb).all()
    # truncation keeps the first 75 word pieces: same as encoding a text cut there by hand
    assert torch.allclose(emb[0], enc.encode_text(" ".join(long.split()[:75]))[0], atol=1e-5)


def test_long_text_average_is_mean_of_sentence_embeddings(enc):
    text = "A woman in a red dress. She carries a black bag! Is it raining?"
    sentences = split_sentences(text)
    assert sentences == ["A woman in a red dress.", "She carries a black bag!", "Is it raining?"]
    per_sentence = enc.encode_text(sentences)
    expected = F.normalize(per_sentence.mean(0, keepdim=True), dim=-1)
    got = enc.encode_text([text, "a cat"], long_text="average")
    assert torch.allclose(got[:1], expected, atol=1e-5)
    assert torch.allclose(got[1], enc.encode_text("a cat")[0], atol=1e-5)  # one sentence: same as truncate
    assert not torch.allclose(got[:1], enc.encode_text(text), atol=1e-3)  # truncate reads the text as one piece


def test_long_sentence_is_split_into_windows_not_truncated(enc):
    sentence = " ".join(["a red dress with long sleeves"] * 25)  # one sentence of 150 word pieces
    rows = tokenize(sentence, context_length=10_000)[0]
    ids = rows[1:int(rows.argmax())].tolist()  # word pieces without the start/end markers
    assert len(ids) == 150
    sot, eot = 49406, 49407
    windows = [ids[:75], ids[75:]]
    tokens = torch.zeros(2, 77, dtype=torch.long)
    for k, w in enumerate(windows):
        tokens[k, :77] = torch.tensor([sot, *w, eot])
    with torch.no_grad():
        w = F.normalize(enc.model.encode_text(tokens), dim=-1)
    expected = F.normalize(w.mean(0, keepdim=True), dim=-1)
    assert torch.allclose(enc.encode_text(sentence, long_text="average"), expected, atol=1e-5)
    assert torch.allclose(enc.encode_text(sentence), w[:1], atol=1e-5)  # truncate mode = first window only


def test_sentence_splitting_rules():
    assert split_sentences("Dr. Smith has a cat. It is black!  Small, e.g. a kitten?\nNew line") == [
        "Dr. Smith has a cat.", "It is black!", "Small, e.g. a kitten?", "New line"]
    assert split_sentences("no full stop at all") == ["no full stop at all"]
    assert split_sentences("") == [""] and split_sentences("  \n ") == [""]
    assert split_sentences('He said "stop." Then left...  OK') == ['He said "stop."', "Then left...", "OK"]


def test_text_input_mistakes_are_kit_errors(enc):
    with pytest.raises(KitError, match="long_text must be one of"):
        enc.encode_text("a cat", long_text="chunks")
    with pytest.raises(KitError, match="texts must be strings"):
        enc.encode_text(["a cat", 3])
    with pytest.raises(KitError, match="batch_size"):
        enc.encode_text("a cat", batch_size=0)
    assert enc.encode_text([]).shape == (0, enc.embed_dim)


# ---------------------------------------------------------------------- images
def test_images_batched_grey_uint8_and_float_agree(enc, mnist):
    as_float = mnist.float() / 255
    batched = enc.encode_images(mnist, batch_size=64)
    assert batched.shape == (300, enc.embed_dim) and batched.dtype == torch.float32
    assert torch.allclose(batched.norm(dim=-1), torch.ones(300), atol=1e-5)
    assert torch.allclose(batched, enc.encode_images(as_float, batch_size=300), atol=1e-5)
    assert torch.allclose(batched[:5], torch.cat([enc.encode_images(x) for x in as_float[:5]]), atol=1e-5)
    assert torch.allclose(batched[:8], enc.encode_images(as_float[:8].repeat(1, 3, 1, 1)), atol=1e-5)
    # different digits -> different embeddings
    assert (batched[:20] @ batched[:20].T).fill_diagonal_(0).max() < 0.99999


def test_preprocessing_shapes_and_inputs_left_untouched(enc):
    for shape in [(2, 1, 32, 50), (3, 3, 17, 90), (1, 3, 500, 20), (2, 1, 28, 28), (2, 3, 32, 32)]:
        x = torch.rand(*shape)
        before = x.clone()
        assert enc.preprocess(x).shape == (shape[0], 3, 32, 32)
        assert enc.encode_images(x).shape == (shape[0], enc.embed_dim)
        assert torch.equal(x, before)  # never modified in place
    from cvaelib.clip import resize_and_crop

    x = torch.rand(1, 3, 20, 40)
    assert resize_and_crop(x, (24, 32), "shortest").shape == (1, 3, 24, 32)
    padded = resize_and_crop(x, (32, 32), "longest")
    assert padded.shape == (1, 3, 32, 32) and padded[..., :8, :].abs().max() == 0  # 16 rows of image, 8 of padding
    assert resize_and_crop(x, (32, 32), "squash").shape == (1, 3, 32, 32)


def test_tensor_preprocessing_matches_clips_pil_transform(enc, data_root):
    """Real COCO photos: the batched tensor preprocessing reproduces clip's PIL pipeline up to rounding."""
    clip = import_clip_module()
    files = sorted((data_root / "coco_sample" / "val2017").glob("*.jpg"))[:4]
    assert files, "coco_sample missing"
    for f in files:
        pil = Image.open(f).convert("RGB")
        ref = clip.clip._transform(enc.input_resolution)(pil).unsqueeze(0)
        ours = enc.preprocess(to_tensor(pil).unsqueeze(0))
        assert ours.shape == ref.shape == (1, 3, 32, 32)
        diff = (ours - ref).abs()
        assert diff.mean() < 0.01 and diff.max() < 0.25  # PIL rounds to uint8: one step is 0.0145 here
        with torch.no_grad():
            ref_emb = F.normalize(enc.model.encode_image(ref), dim=-1)
        assert float(enc.encode_images(to_tensor(pil)) @ ref_emb[0]) > 0.999


def test_image_input_mistakes_are_kit_errors(enc):
    with pytest.raises(KitError, match=r"in \[0, 1\]"):
        enc.encode_images(torch.randn(2, 3, 32, 32))  # already normalised images
    with pytest.raises(KitError, match="C = 1 or 3"):
        enc.encode_images(torch.rand(2, 4, 32, 32))
    with pytest.raises(KitError, match="torch.Tensor"):
        enc.encode_images(np.zeros((2, 3, 32, 32)))


# ---------------------------------------------------------------------- cache
def test_cache_is_reused_and_rebuilt_when_stale(enc, mnist, tmp_path, capsys, monkeypatch, data_root):
    cache = tmp_path / "emb" / "mnist_test"
    first = cached_image_embeddings(enc, mnist, cache, batch_size=128)
    npy, meta = cache_files(cache)
    assert npy.exists() and meta.exists()
    info = json.loads(meta.read_text())
    assert info["model"] == enc.name and info["embed_dim"] == 32 and info["count"] == 300
    assert info["preprocessing"]["size"] == [32, 32] and info["images_key"] == "bytes"
    assert torch.allclose(first, enc.encode_images(mnist), atol=1e-6)

    calls = []
    real = enc.encode_images
    monkeypatch.setattr(enc, "encode_images", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = cached_image_embeddings(enc, mnist, cache)
    assert not calls and torch.equal(again, first)  # valid cache: read, not recomputed
    assert "stale" not in capsys.readouterr().out

    # other images (same count): rebuilt, with a note
    other = load_dataset("mnist", root=data_root, split="test").images[300:600]
    rebuilt = cached_image_embeddings(enc, other, cache)
    assert calls and "stale (the images changed)" in capsys.readouterr().out
    assert not torch.allclose(rebuilt, first)

    # another model under the same cache path: rebuilt
    other_model = tmp_path / "tiny2.pt"
    save_random_clip(other_model, "tiny", seed=2)
    enc2 = load_clip(str(other_model), device="cpu")
    cached_image_embeddings(enc2, other, cache)
    assert "model changed" in capsys.readouterr().out

    # same file path, retrained weights: the weights fingerprint catches it
    save_random_clip(other_model, "tiny", seed=3)
    enc3 = load_clip(str(other_model), device="cpu")
    assert enc3.name == enc2.name and enc3.weights_id != enc2.weights_id
    cached_image_embeddings(enc3, other, cache)
    assert "weights_id changed" in capsys.readouterr().out

    # a different preprocessing description: rebuilt
    monkeypatch.setattr(type(enc3), "interpolation", property(lambda self: "bilinear"))
    cached_image_embeddings(enc3, other, cache)
    assert "preprocessing changed" in capsys.readouterr().out


def test_cache_by_image_ids_and_corruption(enc, mnist, tmp_path, capsys):
    cache = tmp_path / "ids_cache.npy"  # the suffix is optional
    ids = [f"mnist-test-{i}" for i in range(len(mnist))]
    first = cached_image_embeddings(enc, mnist, cache, image_ids=ids)
    assert json.loads(cache_files(cache)[1].read_text())["images_key"] == "ids"
    # ids are enough to read a valid cache: the pixels need not be loaded again
    assert torch.equal(cached_image_embeddings(enc, None, cache, image_ids=ids), first)
    with pytest.raises(KitError, match="pass the images"):
        cached_image_embeddings(enc, None, cache, image_ids=ids[::-1])
    with pytest.raises(KitError, match="one id per image"):
        cached_image_embeddings(enc, mnist, cache, image_ids=ids[:10])
    # a truncated .npy is detected and rebuilt
    npy = cache_files(cache)[0]
    npy.write_bytes(npy.read_bytes()[:100])
    again = cached_image_embeddings(enc, mnist, cache, image_ids=ids)
    assert "unreadable" in capsys.readouterr().out and torch.allclose(again, first)
    # a missing .json (interrupted write) is rebuilt too
    cache_files(cache)[1].unlink()
    assert torch.allclose(cached_image_embeddings(enc, mnist, cache, image_ids=ids), first)
    assert Path(npy).exists()
