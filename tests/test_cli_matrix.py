"""Every CLI verb x every model kind: it works (outputs of the right shape), or it refuses in one line naming what
does apply.  One small trained run per kind: none (vae), label (cvae, vqvae), attributes (attr-cvae on the synthetic
CelebA), CLIP (resvae with an offline random CLIP on the synthetic CelebA, clip-cvae with the tests' TinyCLIP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvaelib.cli import main as cli_main
from fixtures.celeba_fixture import make_celeba_fixture
from tiny_models import tiny_clip

FACE = ["--image-size", "32", "--width", "8", "--latent-dim", "8", "--batch-size", "8", "--epochs", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root) -> dict[str, Path]:
    """kind -> a trained run folder (plus the prepared CelebA under "celeba" and input arrays under "io")."""
    from cvaelib.clip.synthetic import save_random_clip
    from cvaelib.clip.tiny import TINY_FILE, save_tiny_clip
    from cvaelib.data import load_dataset
    from cvaelib.data.shards import load_prepared
    from data_prep.celeba import prepare_celeba

    root = tmp_path_factory.mktemp("matrix")
    src = make_celeba_fixture(root / "src", n=48, layout="official")
    prepare_celeba(src, root / "celeba", sizes=(32,), variants=("zoom",), workers=1, verify=False)
    save_random_clip(root / "clip.pt", shape="tiny")
    save_tiny_clip(tiny_clip(data_root), root / "clip-cvae" / TINY_FILE)  # the run uses it, trains no TinyCLIP
    celeba = f"celeba:{root / 'celeba'}"
    trains = {
        "vae": ["--model", "vae", "--dataset", "digits", "--epochs", "3"],
        "cvae": ["--model", "cvae", "--dataset", "digits", "--epochs", "5"],
        "vqvae": ["--model", "vqvae", "--dataset", "digits", "--epochs", "2"],
        "attr-cvae": ["--model", "attr-cvae", "--dataset", celeba, *FACE],
        "resvae": ["--model", "resvae", "--dataset", celeba, "--clip", str(root / "clip.pt"), *FACE],
        "clip-cvae": ["--model", "clip-cvae", "--dataset", "mnist", "--data-root", str(data_root), "--limit", "2000",
                      "--epochs", "1"],
    }
    for name, args in trains.items():
        assert cli_main(["train", *args, "--quiet", "--out", str(root / name)]) == 0, name
    io = root / "io"
    io.mkdir()
    digits = load_dataset("digits", split="test")
    np.save(io / "digits.npy", digits.float_images()[:6].numpy())
    np.save(io / "labels.npy", digits.labels[:6].numpy())
    np.save(io / "other.npy", ((digits.labels[:6] + 1) % 10).numpy())
    np.save(io / "bad_labels.npy", digits.labels[:5].numpy())
    faces = load_prepared(root / "celeba", "test", size=32)
    np.save(io / "faces.npy", faces.float_images()[:3].numpy())
    np.save(io / "attributes.npy", faces.labels[:3].numpy())
    np.save(io / "other_attributes.npy", 1 - faces.labels[:3].numpy())
    mnist = load_dataset("mnist", data_root, "test")
    np.save(io / "mnist.npy", mnist.float_images()[:4].numpy())
    return {**{name: root / name for name in trains}, "io": io}


def _call(args: list[str], capsys) -> tuple[int, list[str]]:
    try:
        rc = cli_main(args)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]
    return rc, err


def _fill(args: list[str], runs: dict[str, Path], tmp_path: Path) -> list[str]:
    return [a.format(io=runs["io"], tmp=tmp_path) for a in args]


# kind, extra generate options, expected .npy shape (or the text of the one-line refusal)
GENERATE = [
    ("vae", [], (4, 1, 8, 8)),
    ("vae", ["--label", "3"], "--label does not apply to this vae model (unconditional): it takes no condition"),
    ("vae", ["--prompt", "a three"], "--prompt does not apply to this vae model"),
    ("cvae", ["--label", "seven"], (4, 1, 8, 8)),
    ("cvae", ["--prompt", "three and seven"], (8, 1, 8, 8)),
    ("cvae", [], "class-conditional): pass --label"),
    ("cvae", ["--attributes", "Smiling"], "--attributes does not apply to this cvae model (class-conditional): "
                                          "it takes --label, --prompt"),
    ("cvae", ["--image-npy", "{io}/digits.npy"], "--image-npy does not apply to this cvae model"),
    ("vqvae", ["--label", "3"], (4, 1, 8, 8)),
    ("vqvae", ["--bridge", "shift"], "--bridge does not apply to this vqvae model"),
    ("attr-cvae", ["--attributes", "Smiling,Eyeglasses,-Male"], (4, 3, 32, 32)),
    ("attr-cvae", ["--attributes", "Smilling"], "unknown attribute 'Smilling'; did you mean 'Smiling'?"),
    ("attr-cvae", ["--prompt", "a smiling woman with glasses"], (4, 3, 32, 32)),
    ("attr-cvae", [], (4, 3, 32, 32)),
    ("attr-cvae", ["--attributes", "Smiling", "--factor", "1.5", "--image-npy", "{io}/faces.npy"], (3, 3, 32, 32)),
    ("attr-cvae", ["--label", "Smiling"], "--label does not apply to this attr-cvae model (conditioned on attribute "
                                          "vectors): it takes --attributes, --prompt, --image-npy, --factor"),
    ("resvae", ["--prompt", "a smiling woman with glasses"], (4, 3, 32, 32)),
    ("resvae", ["--image-npy", "{io}/faces.npy"], (4, 3, 32, 32)),
    ("resvae", ["--prompt", "a smiling man", "--image-npy", "{io}/faces.npy", "--factor", "0.3"], (3, 3, 32, 32)),
    ("resvae", ["--label", "3"], "--label does not apply to this resvae model (conditioned on CLIP embeddings): it "
                                 "takes --prompt, --to, --image-npy, --factor, --bridge"),
    ("resvae", ["--attributes", "Smiling"], "--attributes does not apply to this resvae model"),
    ("resvae", [], "pass --prompt TEXT (text -> image) or --image-npy FILE"),
    ("clip-cvae", ["--prompt", "a handwritten seven"], (4, 1, 28, 28)),
    ("clip-cvae", ["--prompt", "one", "--to", "seven"], (4, 1, 28, 28)),
    ("clip-cvae", ["--image-npy", "{io}/mnist.npy"], (4, 1, 28, 28)),
    ("clip-cvae", ["--image-npy", "{io}/faces.npy"], "--image-npy has shape [3, 3, 32, 32], this model needs "
                                                      "[N, 1, 28, 28]"),
]


@pytest.mark.parametrize("kind,options,expect", GENERATE, ids=[f"{k}-{' '.join(o[:1])}" for k, o, _ in GENERATE])
def test_generate(kind, options, expect, runs, tmp_path, capsys):
    npy = tmp_path / "g.npy"
    rc, err = _call(["generate", "--checkpoint", str(runs[kind]), "--n", "4", "--out", str(tmp_path / "g.png"),
                     "--npy", str(npy), *_fill(options, runs, tmp_path)], capsys)
    if isinstance(expect, tuple):
        assert rc == 0, err
        arr = np.load(npy)
        assert arr.shape == expect and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
        assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    else:
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err


RECONSTRUCT = [
    ("vae", "digits", [], (6, 1, 8, 8)),
    ("vae", "digits", ["--labels", "{io}/labels.npy"], "--labels does not apply to this vae model (unconditional)"),
    ("cvae", "digits", ["--labels", "{io}/labels.npy"], (6, 1, 8, 8)),
    ("cvae", "digits", ["--labels", "{io}/labels.npy", "--decode-labels", "{io}/other.npy"], (6, 1, 8, 8)),
    ("cvae", "digits", [], "pass --labels L.npy"),
    ("cvae", "digits", ["--labels", "{io}/labels.npy", "--decode-labels", "{io}/bad_labels.npy"],
     "--decode-labels has shape [5], expected one entry per image (6)"),
    ("cvae", "digits", ["--decode-labels", "{io}/other.npy"], "to decode with --decode-labels, pass --labels"),
    ("vqvae", "digits", [], (6, 1, 8, 8)),
    ("vqvae", "digits", ["--labels", "{io}/labels.npy", "--decode-labels", "{io}/other.npy"],
     "decodes without its class (only its prior is class-conditional): --decode-labels does not apply"),
    ("attr-cvae", "faces", ["--labels", "{io}/attributes.npy"], (3, 3, 32, 32)),
    ("attr-cvae", "faces", ["--labels", "{io}/attributes.npy", "--decode-labels", "{io}/other_attributes.npy"],
     (3, 3, 32, 32)),
    ("attr-cvae", "faces", [], "pass --labels A.npy (float attribute vectors [N, D]"),
    ("attr-cvae", "faces", ["--labels", "{io}/labels.npy"], "--labels has shape [6], expected one entry per image (3)"),
    ("resvae", "faces", [], (3, 3, 32, 32)),
    ("resvae", "faces", ["--labels", "{io}/attributes.npy"], "conditions each image on its own CLIP image embedding"),
    ("clip-cvae", "mnist", [], (4, 1, 28, 28)),
]


@pytest.mark.parametrize("kind,images,options,expect", RECONSTRUCT,
                         ids=[f"{k}-{' '.join(o[::2])}" for k, _, o, _ in RECONSTRUCT])
def test_reconstruct(kind, images, options, expect, runs, tmp_path, capsys):
    out = tmp_path / "r.npy"
    rc, err = _call(["reconstruct", "--checkpoint", str(runs[kind]), "--npy-in", str(runs["io"] / f"{images}.npy"),
                     "--npy-out", str(out), *_fill(options, runs, tmp_path)], capsys)
    if isinstance(expect, tuple):
        assert rc == 0, err
        arr = np.load(out)
        assert arr.shape == expect and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    else:
        assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err


@pytest.mark.parametrize("kind,keys", [
    ("vae", ["recon_ssim", "sample_cfid"]), ("cvae", ["recon_ssim", "cond_acc_mean"]),
    ("vqvae", ["recon_ssim", "cond_acc_mean"]), ("attr-cvae", ["recon_ssim"]), ("resvae", ["recon_ssim"]),
    ("clip-cvae", ["recon_ssim", "prompt_acc_mean", "clip_score"]),
])
def test_evaluate_finds_the_data_from_the_checkpoint(kind, keys, runs, tmp_path, capsys):
    rc, err = _call(["evaluate", "--checkpoint", str(runs[kind]), "--n", "20", "--out", str(tmp_path / "m.json")],
                    capsys)
    assert rc == 0, err
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert all(k in metrics for k in keys), (kind, sorted(metrics))
    assert 0 < metrics["recon_ssim"] <= 1


TRAIN_REFUSALS = [
    (["--model", "ae", "--dataset", "digits", "--beta", "2"], "--beta does not apply to --model ae; its options: "
                                                              "--latent-dim, --width"),
    (["--model", "vae", "--dataset", "digits", "--injection", "concat"], "--injection does not apply to --model vae"),
    (["--model", "cvae", "--dataset", "digits", "--clip", "tiny"], "--clip does not apply to --model cvae"),
    (["--model", "cvae", "--dataset", "digits", "--injection", "film"],
     "unknown injection 'film' for cvae; choose one of: concat, additive, onehot"),
    (["--model", "attr-cvae", "--dataset", "digits", "--clip", "x"], "--clip does not apply to --model attr-cvae"),
    (["--model", "resvae", "--dataset", "digits"], "resvae needs square images whose side is a power of two"),
    (["--model", "cvae", "--dataset", "{celeba}", "--image-size", "32"], "a class-conditional model needs class labels"),
    (["--model", "attr-cvae", "--dataset", "digits"], "attr-cvae needs square images whose side is a power of two"),
    (["--model", "cvae", "--dataset", "digits", "--tiny-seconds", "5"], "--tiny-seconds applies to runs that train"),
    (["--model", "cvae", "--dataset", "digits", "--image-size", "64"], "--image-size applies to prepared data"),
    (["--model", "cvae", "--dataset", "digits", "--epochs", "0"], "--epochs must be > 0, got 0"),
]


@pytest.mark.parametrize("args,expect", TRAIN_REFUSALS, ids=[" ".join(a[1:4:2]) + " " + " ".join(a[4:5])
                                                             for a, _ in TRAIN_REFUSALS])
def test_train_refuses_what_does_not_apply(args, expect, runs, tmp_path, capsys):
    args = [a.format(celeba=f"celeba:{runs['io'].parent / 'celeba'}") for a in args]
    rc, err = _call(["train", *args, "--quiet", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and expect in err[0], err
    assert not (tmp_path / "o" / "checkpoint.pt").exists()
