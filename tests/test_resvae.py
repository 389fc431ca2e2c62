"""Residual VAE (five injection points), multi-label attribute CVAE, VGG19 perceptual loss, CLI on prepared data.

Models are built small (32x32, width 8) so every test trains real steps on a shared 2-core CPU; the CelebA data is
the synthetic fixture in the real file layout, prepared by the kit's own prep script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cvaelib import fit, load_model
from cvaelib.checkpoint import save_checkpoint
from cvaelib.cli import main as cli_main
from cvaelib.conditioning import with_clip_condition
from cvaelib.data.prepared import parse_prepared
from cvaelib.data import ImageData
from cvaelib.data.shards import load_prepared
from cvaelib.errors import DataError, KitError
from cvaelib.models import CELEBA_ATTRIBUTES, INJECTIONS, AttributeCVAE, ResidualVAE, build_model
from cvaelib.perceptual import VGGPerceptualLoss
from fixtures.celeba_fixture import make_celeba_fixture

SMALL = dict(image_shape=(3, 32, 32), latent_dim=8, width=8)


@pytest.fixture(scope="module")
def celeba_prepared(tmp_path_factory) -> Path:
    """The synthetic CelebA (official layout, 48 faces) prepared at 32 and 64 px by data_prep.celeba."""
    from data_prep.celeba import prepare_celeba

    root = tmp_path_factory.mktemp("celeba")
    src = make_celeba_fixture(root / "src", n=48, layout="official")
    prepare_celeba(src, root / "prepared", sizes=(32, 64), variants=("zoom",), workers=1, verify=False)
    return root / "prepared"


@pytest.fixture(scope="module")
def faces(celeba_prepared) -> ImageData:
    return load_prepared(celeba_prepared, "train", size=32)


def _model(injection: str, condition_dim: int = 12, **kw) -> ResidualVAE:
    torch.manual_seed(0)
    return ResidualVAE(**SMALL, injection=injection, condition_dim=condition_dim, **kw)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_every_injection_trains_a_step_and_generates(injection, faces, tmp_path):
    conditional = injection != "none"
    data = ImageData(faces.images, torch.randn(len(faces), 12), [], "celeba")
    model = _model(injection)
    assert model.condition == ("clip" if conditional else None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, data, epochs=1, batch_size=8, progress=False, checkpoint=tmp_path / "run")
    assert history.images == 32 and all(torch.isfinite(torch.tensor(v)) for v in history.train[0].values())
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert "mu.weight" in changed and "out.weight" in changed  # a real optimiser step
    c = data.labels[:5] if conditional else None
    imgs = model.sample(5, c, generator=torch.Generator().manual_seed(0))
    assert imgs.shape == (5, 3, 32, 32) and 0 <= float(imgs.min()) and float(imgs.max()) <= 1
    rec = model.reconstruct(data.images[:5].float() / 255, c)
    assert rec.shape == (5, 3, 32, 32)
    # the checkpoint's config alone rebuilds the model: same samples after load_model
    loaded = load_model(tmp_path / "run")
    assert type(loaded) is ResidualVAE and loaded.config == model.config
    again = loaded.sample(5, c, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, imgs)


def test_injection_point_decides_what_the_encoder_sees():
    x = torch.rand(4, 3, 32, 32)
    c1, c2 = torch.randn(4, 12), torch.randn(4, 12)
    for injection in INJECTIONS[1:]:
        model = _model(injection).eval()
        mu1, mu2 = model.encode(x, c1)[0], model.encode(x, c2)[0]
        if injection == "decoder":  # the decoder alone gets the condition
            torch.testing.assert_close(mu1, mu2)
        else:
            assert (mu1 - mu2).abs().max() > 1e-4, injection
        z = torch.randn(4, 8)
        assert (model.decode(z, c1) - model.decode(z, c2)).abs().max() > 1e-4, injection
    # where the projection lands: the feature width of the block the condition is added after
    assert _model("down3").cond_in.out_features == 32 and _model("down4").cond_in.out_features == 64
    assert _model("input").down[0].main[0].in_channels == 3 + 8
    # five down-blocks at 64x64 (to 2x2) and six up-blocks back, latent 128 by default
    big = ResidualVAE()
    assert len(big.down) == 5 and len(big.up) == 6 and big.latent_dim == 128
    assert big.decode(torch.zeros(2, 128), torch.zeros(2, 512)).shape == (2, 3, 64, 64)


def test_additive_decoder_reads_the_condition_as_a_shift_of_z(faces, tmp_path):
    """decoder_condition="add" (lesson 07): the decoder reads z + P c, so a condition is indistinguishable from a
    shifted code, which concatenation (a separate weight for c) does not imply; it trains and reloads."""
    add, cat = _model("down3", decoder_condition="add").eval(), _model("down3").eval()
    assert add.up[0].skip[1].in_channels == 8 and cat.up[0].skip[1].in_channels == 8 + 12
    z, c1, c2 = torch.randn(4, 8), torch.randn(4, 12), torch.randn(4, 12)
    with torch.no_grad():
        shifted = z + add.cond_to_z(c1) - add.cond_to_z(c2)
        torch.testing.assert_close(add.decode(z, c1), add.decode(shifted, c2))
        assert (add.decode(z, c1) - add.decode(z, c2)).abs().max() > 1e-4  # the condition still matters
    assert "decoder_condition" not in cat.config  # concat checkpoints keep their old config
    data = ImageData(faces.images, torch.randn(len(faces), 12), [], "celeba")
    fit(add, data, epochs=1, batch_size=8, progress=False, checkpoint=tmp_path / "add")
    loaded = load_model(tmp_path / "add")
    assert loaded.decoder_condition == "add" and loaded.config == add.config
    with pytest.raises(KitError, match="decoder_condition"):
        ResidualVAE(**SMALL, decoder_condition="film")


def test_condition_mistakes_are_one_line_kit_errors():
    with pytest.raises(KitError, match="unconditional"):
        _model("none").sample(2, torch.randn(2, 12))
    with pytest.raises(KitError, match="needs a condition"):
        _model("down3").sample(2)
    with pytest.raises(KitError, match=r"\[N, 12\]"):
        _model("down3").sample(2, torch.randn(2, 40))
    with pytest.raises(KitError, match="injection"):
        ResidualVAE(**SMALL, injection="middle")
    with pytest.raises(KitError, match="power of two"):
        ResidualVAE(image_shape=(3, 28, 28))


def test_attribute_cvae_toggles_named_attributes(faces):
    torch.manual_seed(0)
    model = AttributeCVAE(**SMALL).eval()
    assert model.config["condition_dim"] == 40 and model.attribute_names == CELEBA_ATTRIBUTES
    assert faces.labels.shape == (len(faces), 40) and faces.labels.dtype == torch.float32
    c = model.attributes_to_condition(["Smiling", "eyeglasses"])
    assert c.shape == (1, 40) and c.sum() == 2 and c[0, 31] == 1 and c[0, 15] == 1
    base = faces.labels[:3]
    glasses = model.toggle(base, "Eyeglasses", True)
    assert torch.equal(glasses[:, 15], torch.ones(3)) and torch.equal(glasses[:, :15], base[:, :15])
    flipped = model.toggle(base, "Male")
    assert torch.equal(flipped[:, 20], 1 - base[:, 20])
    z = torch.randn(3, 8)
    with torch.no_grad():
        a, b = torch.sigmoid(model.decode(z, base)), torch.sigmoid(model.decode(z, glasses))
    assert (a - b).abs().max() > 1e-6  # same z, one attribute switched: a different face
    with pytest.raises(KitError, match="Eyeglasses"):
        model.attribute_index("Eyeglases")
    rebuilt = build_model(model.config)
    assert isinstance(rebuilt, AttributeCVAE) and rebuilt.attribute_names == CELEBA_ATTRIBUTES
    with pytest.raises(KitError, match="injection"):
        AttributeCVAE(**SMALL, injection="none")


def test_residual_vae_loss_falls_on_faces(faces):
    # Bernoulli NLL of grey-level pixels cannot reach 0: measure the excess over its floor, sum of H(x)
    x = faces.float_images().clamp(1e-6, 1 - 1e-6)
    floor = float(-(x * x.log() + (1 - x) * (1 - x).log()).sum() / len(x))
    torch.manual_seed(0)
    model = AttributeCVAE(**SMALL)
    history = fit(model, faces, epochs=8, batch_size=8, lr=2e-3, progress=False)
    first, last = history.train[0]["recon"] - floor, history.train[-1]["recon"] - floor
    assert last < 0.8 * first, (first, last)


def test_perceptual_loss_random_vgg_and_offline_error(tmp_path, monkeypatch):
    torch.manual_seed(0)
    loss = VGGPerceptualLoss(weights=None)
    x = torch.rand(2, 3, 32, 32)
    assert float(loss(x, x)) == 0.0
    x_hat = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = loss(x_hat, x)
    value.backward()
    assert float(value.detach()) > 0 and x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())
    # grey images work too (repeated to RGB)
    assert float(loss(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))) > 0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.raises(KitError, match="vgg19-dcbb9e9d.pth"):
        VGGPerceptualLoss(weights="imagenet", download=False)
    with pytest.raises(KitError, match="unknown VGG19 layers"):
        VGGPerceptualLoss(weights=None, layers=["relu9_9"])


def test_perceptual_term_joins_the_loss_but_not_the_checkpoint(tmp_path):
    model = _model("down3", perceptual=1.0, perceptual_weights=None)
    x, c = torch.rand(4, 3, 32, 32), torch.randn(4, 12)
    torch.manual_seed(1)
    terms = model.loss(x, c)
    assert set(terms) == {"loss", "recon", "kl", "perceptual"} and float(terms["perceptual"].detach()) > 0
    torch.testing.assert_close(terms["loss"], terms["recon"] + model.beta * terms["kl"] + terms["perceptual"])
    assert not any(k.startswith(("features", "_perceptual")) for k in model.state_dict())
    save_checkpoint(tmp_path / "c.pt", {"config": model.config, "state_dict": model.state_dict()})
    assert load_model(tmp_path / "c.pt").config["perceptual"] == 1.0


def test_cli_trains_attr_cvae_on_prepared_celeba(celeba_prepared, tmp_path, capsys):
    out = tmp_path / "attr"
    rc = cli_main(["train", "--model", "attr-cvae", "--dataset", f"celeba:{celeba_prepared}", "--image-size", "32",
                   "--width", "8", "--latent-dim", "8", "--epochs", "1", "--batch-size", "8", "--quiet",
                   "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "attr-cvae" and metrics["world_size"] == 1 and (out / "samples.png").stat().st_size
    model = load_model(out, expect="attr-cvae")
    assert model.attribute_names == CELEBA_ATTRIBUTES
    assert model.sample(2, model.attributes_to_condition(["Smiling"], n=2)).shape == (2, 3, 32, 32)


def test_cli_trains_clip_conditioned_resvae_with_a_local_clip(celeba_prepared, tmp_path, capsys):
    from cvaelib.clip.synthetic import save_random_clip

    clip_file = tmp_path / "clip.pt"
    save_random_clip(clip_file, shape="tiny")
    out = tmp_path / "clipvae"
    args = ["train", "--model", "resvae", "--dataset", f"celeba:{celeba_prepared}", "--image-size", "32",
            "--width", "8", "--latent-dim", "8", "--epochs", "1", "--batch-size", "8", "--quiet",
            "--clip", str(clip_file), "--injection", "down4", "--out", str(out)]
    assert cli_main(args) == 0, capsys.readouterr().err
    model = load_model(out, expect="resvae")
    assert model.config["condition_dim"] == 32 and model.config["injection"] == "down4"  # the tiny CLIP's width
    assert (out / "clip_cache").is_dir()
    # unconditional variant needs no CLIP at all
    assert cli_main(args[:-4] + ["--injection", "none", "--clip", "no-such-clip", "--out", str(tmp_path / "u")]) == 0
    assert load_model(tmp_path / "u").condition is None


def test_cli_rejects_mismatched_model_and_data(celeba_prepared, tmp_path, capsys):
    base = ["train", "--epochs", "1", "--out", str(tmp_path / "x")]
    assert cli_main(base + ["--model", "resvae", "--dataset", "digits"]) == 2
    assert "celeba:DIR" in capsys.readouterr().err
    assert cli_main(base + ["--model", "cvae", "--dataset", f"celeba:{celeba_prepared}"]) == 2
    assert "attr-cvae takes attributes" in capsys.readouterr().err
    assert cli_main(base + ["--model", "resvae", "--dataset", f"celeba:{celeba_prepared}", "--injection", "mid"]) == 2
    assert "none, input, down3, down4, decoder" in capsys.readouterr().err
    assert cli_main(base + ["--model", "attr-cvae", "--dataset", f"imagenet:{tmp_path}"]) == 2
    assert "celeba:FOLDER or coco:FOLDER" in capsys.readouterr().err
    with pytest.raises(DataError, match="names no folder"):
        parse_prepared("celeba:")


def test_with_clip_condition_keeps_attributes(faces):
    class FakeEncoder:
        name = "fake"

        def encode_images(self, images, batch_size=256):
            return torch.nn.functional.normalize(images.float().flatten(1)[:, :16], dim=1)

    data = with_clip_condition(faces, FakeEncoder())
    assert data.conditions.shape == (len(faces), 16) and torch.equal(data.labels, faces.labels)  # labels stay
    assert data.class_names == CELEBA_ATTRIBUTES and data.meta["clip_model"] == "fake"
    assert data.take(torch.arange(3)).conditions.shape == (3, 16)


def test_clip_generation_modes_work_with_the_residual_vae(faces):
    """The generation functions of lesson 05 (text -> image, image -> image, manipulation, interpolation,
    reconstruction) accept a trained resvae: fit() leaves a retrieval bank of training embeddings in it."""
    from cvaelib import clip_generate as cg

    class FakeClip:  # deterministic stand-in with CLIP's interface: text and images to unit vectors
        name = "fake"

        def encode_images(self, images, batch_size=256):
            x = images.float() / (255.0 if images.dtype == torch.uint8 else 1.0)
            return torch.nn.functional.normalize(x.flatten(1)[:, ::193][:, :12] + 1e-3, dim=1)

        def encode_text(self, texts):
            g = torch.Generator().manual_seed(sum(map(ord, texts[0])))
            return torch.nn.functional.normalize(torch.randn(len(texts), 12, generator=g), dim=1)

    enc = FakeClip()
    data = with_clip_condition(faces, enc)
    model = _model("down3", condition_noise=0.1, bank_size=16)
    fit(model, data, epochs=1, batch_size=8, progress=False)
    assert int(model.bank_count) == 16 and model.bank_embeddings().shape == (16, 12)
    x = faces.images[:3]
    assert cg.generate_from_text(model, enc, "a smiling woman with glasses", n=4).shape == (4, 3, 32, 32)
    assert cg.generate_from_images(model, enc, x, n_per_image=2).shape == (6, 3, 32, 32)
    same = cg.manipulate(model, enc, x, "wearing glasses", image_embed_factor=1.0)
    torch.testing.assert_close(same, cg.reconstruct(model, enc, x))  # factor 1 = the image's own embedding
    moved = cg.manipulate(model, enc, x, "wearing glasses", image_embed_factor=0.0)
    assert (moved - same).abs().max() > 0
    path = cg.interpolate(model, enc, "a smiling man", "a woman with a hat", steps=5)
    assert path.shape == (5, 3, 32, 32)
    # the attribute model keeps no bank (its conditions are not CLIP embeddings)
    attr = AttributeCVAE(**SMALL)
    fit(attr, faces, epochs=1, batch_size=8, progress=False)
    assert attr.bank.shape[0] == 0


def test_cli_trains_resvae_on_the_prepared_coco_sample(data_root, tmp_path, capsys):
    """The real COCO sample (val2017 only) prepared by data_prep.coco, CLIP-conditioned from a local CLIP file."""
    from cvaelib.clip.synthetic import save_random_clip
    from data_prep.coco import prepare_coco
    from data_prep.common import Log

    sample = data_root / "coco_sample"
    prepare_coco([sample / "annotations" / "captions_val2017_sample.json"], tmp_path / "coco", images_dir=sample,
                 sizes=(32,), workers=1, log=Log(quiet=True))
    save_random_clip(tmp_path / "clip.pt", shape="tiny")
    out = tmp_path / "run"
    args = ["train", "--model", "resvae", "--dataset", f"coco:{tmp_path / 'coco'}", "--image-size", "32", "--width",
            "8", "--latent-dim", "8", "--epochs", "1", "--batch-size", "8", "--quiet", "--clip", str(tmp_path / "clip.pt")]
    assert cli_main(args + ["--out", str(out)]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"].startswith("coco:") and metrics["epochs"] == 1
    model = load_model(out, expect="resvae")
    assert model.config["clip"] == str(tmp_path / "clip.pt") and int(model.bank_count) > 0
    assert cli_main(["train", "--model", "attr-cvae", "--dataset", f"coco:{tmp_path / 'coco'}", "--image-size", "32",
                     "--epochs", "1", "--out", str(tmp_path / "attr")]) == 2
    assert "needs attribute vectors" in capsys.readouterr().err
