"""Loading CLIP every way a student gets it, offline: tiny random CLIPs of OpenAI's real class saved to disk."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cvaelib.clip import (ClipEncoder, OpenAIClipEncoder, OpenClipEncoder, import_clip_module, load_clip,
                          tokenize)
from cvaelib.clip import load as clip_load
from cvaelib.clip.synthetic import save_random_clip
from cvaelib.errors import CheckpointError, KitError

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["a photo of a cat", "a handwritten digit seven", "a red dress with long sleeves"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The same random tiny CLIP saved as a state dict and as a TorchScript archive (OpenAI's format)."""
    d = tmp_path_factory.mktemp("tinyclip")
    model = save_random_clip(d / "tiny_state.pt", "tiny", seed=0)
    save_random_clip(d / "tiny_jit.pt", model=model, torchscript=True)
    return types.SimpleNamespace(model=model, state=d / "tiny_state.pt", jit=d / "tiny_jit.pt", dir=d)


def _reference(model, texts, images):
    """Embeddings straight from the clip.model.CLIP, the way OpenAI's README computes them (no kit code)."""
    clip = import_clip_module()
    with torch.no_grad():
        t = model.encode_text(clip.tokenize(texts))
        i = model.encode_image(images)
    return F.normalize(t.float(), dim=-1), F.normalize(i.float(), dim=-1)


def test_state_dict_and_torchscript_files_reload_to_the_same_model(tiny):
    images = torch.rand(4, 3, 32, 32)  # already at the model's resolution
    ref_t, _ = _reference(tiny.model, TEXTS, images)
    for path in (tiny.state, tiny.jit):
        enc = load_clip(str(path), device="cpu")
        assert isinstance(enc, OpenAIClipEncoder) and isinstance(enc, ClipEncoder)
        assert enc.embed_dim == 32 and enc.input_resolution == 32 and enc.context_length == 77
        assert enc.weights_id and enc.name == str(path.resolve())
        emb = enc.encode_text(TEXTS)
        assert emb.dtype == torch.float32 and emb.device.type == "cpu" and emb.shape == (3, 32)
        # fp32 weights come back exactly, although clip.model.build_model rounds to fp16 on the way
        assert torch.allclose(emb, ref_t, atol=1e-5)
        # pixels: the encoder's own preprocessing on [0, 1] images == clip's Normalize on the same pixels
        mean = torch.tensor(enc.mean).view(1, 3, 1, 1)
        std = torch.tensor(enc.std).view(1, 3, 1, 1)
        _, ref_i = _reference(tiny.model, TEXTS, (images - mean) / std)
        assert torch.allclose(enc.encode_images(images), ref_i, atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_clip_load_cannot_read_a_state_dict_file_but_load_clip_can(tiny):
    """Documents why load_clip reads files itself: clip.load's file branch reuses a consumed handle."""
    clip = import_clip_module()
    try:
        clip.load(str(tiny.state), device="cpu")
        upstream_ok = True
    except Exception:  # noqa: BLE001 - the upstream bug (any error type)
        upstream_ok = False
    enc = load_clip(str(tiny.state), device="cpu")
    assert enc.encode_text("a cat").shape == (1, 32)
    if upstream_ok:
        pytest.skip("clip.load reads state-dict files now (upstream fixed); load_clip still works")


def test_import_clip_without_pkg_resources(monkeypatch):
    """setuptools >= 81 has no pkg_resources: PyPI's openai-clip 1.0.1 must still import."""
    for key in [k for k in sys.modules if k == "clip" or k.startswith("clip.")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # `import pkg_resources` now fails like on setuptools 81
    with pytest.raises(ImportError):
        __import__("pkg_resources")
    clip = import_clip_module()
    assert callable(clip.load) and callable(clip.tokenize)
    assert sys.modules["pkg_resources"] is None  # the stand-in is gone again: nobody else is fooled
    ids = clip.tokenize(["a photo of a cat"])  # clip's own code path that uses packaging.version
    assert torch.equal(ids.long(), tokenize("a photo of a cat"))


def test_missing_or_foreign_or_broken_clip_module_gives_install_hints(monkeypatch, tmp_path):
    for key in [k for k in sys.modules if k == "clip" or k.startswith("clip.")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "clip", None)  # not installed
    with pytest.raises(KitError, match="pip install openai-clip"):
        import_clip_module()
    monkeypatch.setitem(sys.modules, "clip", types.ModuleType("clip"))  # PyPI's unrelated `clip` package
    with pytest.raises(KitError, match="not OpenAI's CLIP"):
        import_clip_module()


def test_a_broken_clip_install_never_breaks_import_cvaelib(tmp_path):
    fake = tmp_path / "clip"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('broken install')\n")
    code = ("import cvaelib, cvaelib.clip\n"
            "from cvaelib.clip import import_clip_module\n"
            "from cvaelib.errors import KitError\n"
            "try:\n    import_clip_module()\nexcept KitError as e:\n    print('KITERROR', e)\n")
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "KITERROR" in out.stdout and "broken install" in out.stdout and "reinstall" in out.stdout


@pytest.fixture()
def tiny_open_clip_arch(tmp_path):
    """Register an open_clip architecture with the tiny CLIP's shape (OpenAI layout, QuickGELU)."""
    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 32, "quick_gelu": True,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 64},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    (tmp_path / "cvaelib-test-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    return "cvaelib-test-tiny"


def test_open_clip_fallback_when_openai_download_fails(tiny, tiny_open_clip_arch, monkeypatch):
    clip = import_clip_module()
    calls = []

    def dead_download(*args, **kwargs):
        calls.append(args)
        raise urllib.error.HTTPError("https://openaipublic.azureedge.net/clip/models/x/ViT-B-32.pt", 404,
                                     "Not Found", {}, None)

    monkeypatch.setattr(clip, "load", dead_download)
    # stand-in for open_clip's pretrained="openai" download: the same architecture, weights from a local file
    monkeypatch.setitem(clip_load.OPENAI_TO_OPEN_CLIP, "ViT-B/32", (tiny_open_clip_arch, str(tiny.state)))
    enc = load_clip("ViT-B/32", device="cpu")
    assert calls, "clip.load was not tried first"
    assert isinstance(enc, OpenClipEncoder) and enc.name == "ViT-B/32" and enc.embed_dim == 32
    # same weights through the other package -> the same embeddings (tokenizer and preprocessing agree)
    direct = load_clip(str(tiny.state), device="cpu")
    images = torch.rand(3, 1, 28, 28)
    assert torch.allclose(enc.encode_text(TEXTS), direct.encode_text(TEXTS), atol=1e-5)
    assert torch.allclose(enc.encode_images(images), direct.encode_images(images), atol=1e-5)
    # the explicit spelling loads the same thing
    explicit = load_clip(f"open_clip:{tiny_open_clip_arch}/{tiny.state}", device="cpu")
    assert torch.allclose(explicit.encode_text(TEXTS), direct.encode_text(TEXTS), atol=1e-5)


def test_open_clip_trimmed_text_forward_is_exact(tiny, tiny_open_clip_arch):
    enc = load_clip(f"open_clip:{tiny_open_clip_arch}/{tiny.state}", device="cpu")
    tokens = enc.tokenize(["a cat", "a long sentence about a small dog running on the beach"])
    with torch.no_grad():
        assert torch.allclose(enc._encode_text_tokens(tokens), enc.model.encode_text(tokens), atol=1e-5)


def test_offline_without_weights_is_one_clear_error(monkeypatch, tmp_path):
    clip = import_clip_module()
    open_clip = pytest.importorskip("open_clip")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    def hub_offline(*args, **kwargs):
        raise RuntimeError("Failed to download weights for tag 'openai': "
                           "cannot find the requested files in the local cache")

    monkeypatch.setattr(clip, "load", offline)
    monkeypatch.setattr(open_clip, "create_model_and_transforms", hub_offline)
    with pytest.raises(KitError) as info:
        load_clip("ViT-B/32", device="cpu", download_root=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert "'ViT-B/32'" in msg and "clip: URLError" in msg and "open_clip: RuntimeError" in msg
    for option in ("connect to the internet", str(tmp_path), "ViT-B-32.pt", "load_clip('/path/to/model.pt')",
                   "tiny:"):
        assert option in msg, option


def test_no_clip_package_at_all_names_the_installs(monkeypatch):
    for key in [k for k in sys.modules if k.split(".")[0] in ("clip", "open_clip")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "clip", None)
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(KitError) as info:
        load_clip("ViT-B/32", device="cpu")
    assert "pip install openai-clip" in str(info.value) and "open_clip_torch" in str(info.value)


def test_bad_names_and_files(tmp_path):
    with pytest.raises(KitError, match="unknown CLIP model 'ViT-B/99'.*ViT-B/32"):
        load_clip("ViT-B/99", device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_clip(str(tmp_path / "missing.pt"), device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="neither a TorchScript CLIP nor a state dict"):
        load_clip(str(junk), device="cpu")
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="does not hold CLIP weights"):
        load_clip(str(other), device="cpu")
    with pytest.raises(KitError, match="open_clip:ARCH/PRETRAINED"):
        load_clip("open_clip:", device="cpu")


def test_local_file_loads_through_open_clip_when_clip_is_missing(tiny, monkeypatch):
    pytest.importorskip("open_clip")
    direct = load_clip(str(tiny.state), device="cpu")
    for key in [k for k in sys.modules if k == "clip" or k.startswith("clip.")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, "clip", None)  # only open_clip is installed
    enc = load_clip(str(tiny.state), device="cpu")
    assert isinstance(enc, OpenClipEncoder) and enc.input_size == (32, 32) and enc.weights_id == direct.weights_id
    images = torch.rand(2, 3, 40, 60)
    assert torch.allclose(enc.encode_text(TEXTS), direct.encode_text(TEXTS), atol=1e-5)
    assert torch.allclose(enc.encode_images(images), direct.encode_images(images), atol=1e-5)


def test_weights_of_another_layout_are_a_checkpoint_error(tmp_path):
    odd = tmp_path / "odd.pt"
    torch.save({"text_projection": torch.zeros(4, 4), "visual.proj": torch.zeros(4, 4)}, odd)
    with pytest.raises(CheckpointError, match="do not fit OpenAI's CLIP layout"):
        load_clip(str(odd), device="cpu")


def test_wrapped_training_checkpoint_is_unwrapped(tiny, tmp_path):
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in tiny.model.state_dict().items()}}, wrapped)
    a = load_clip(str(wrapped), device="cpu").encode_text(TEXTS)
    b = load_clip(str(tiny.state), device="cpu").encode_text(TEXTS)
    assert torch.allclose(a, b, atol=1e-6)


def test_tiny_prefix_is_dispatched_to_the_tinyclip_loader(tiny, monkeypatch):
    seen = {}

    def fake_loader(path, device):
        seen["args"] = (path, device)
        return load_clip(str(tiny.state), device=device)

    fake = types.ModuleType("cvaelib.clip.tiny")
    fake.load_tiny_clip = fake_loader
    monkeypatch.setitem(sys.modules, "cvaelib.clip.tiny", fake)
    enc = load_clip(f"tiny:{tiny.state}", device="cpu")
    assert seen["args"] == (str(tiny.state), torch.device("cpu"))
    assert isinstance(enc, ClipEncoder) and enc.weights_id
