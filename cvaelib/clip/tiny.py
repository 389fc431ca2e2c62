"""TinyCLIP: a small CLIP the kit trains itself in minutes on a CPU, so nothing has to be downloaded.

Shape of the model (the same two towers as ``clip.model.CLIP``, Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision", https://arxiv.org/abs/2103.00020, only much smaller):

* **text tower**: CLIP's real BPE tokenizer -> a 2-layer transformer -> the feature at the end-of-text token -> a
  linear projection.  Only word pieces that occur in the generated captions (:mod:`cvaelib.clip.captions`) get an
  embedding of their own; every other piece maps to one shared ``<unk>`` embedding.  Training inserts ``<unk>``
  pieces at random ("word dropout"), so a prompt with words TinyCLIP never saw ("a *blurry* photo of a coat") still
  lands near the class it names;
* **image tower**: a small CNN on 28x28 pictures -> a linear projection;
* both projected to ``embed_dim`` and L2-normalised; a learned temperature scales the cosine similarities.

Training is contrastive, as in CLIP, with one change that the generated captions make possible: two captions of
the same class are *both* right for an image (in a batch of 256 MNIST images ~25 share a class), so the target
puts weight on every same-class pair (a supervised contrastive target, Khosla et al. 2020,
https://arxiv.org/abs/2004.11362) and extra weight on the image's own caption, whose descriptors ("thick",
"slanted to the left", "dark") are about that very image.

``train_tiny_clip`` runs for a fixed number of seconds (150 by default), ``save_tiny_clip`` / ``load_tiny_clip``
store it as a normal kit checkpoint, and :class:`TinyClipEncoder` gives it the same ``encode_text`` /
``encode_images`` interface as the real CLIP (:class:`cvaelib.clip.encoder.ClipEncoder`).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import KitError
from . import captions as cap
from .encoder import ClipEncoder

UNK = 0  # index of the shared unknown-word embedding in TinyCLIP's own vocabulary
TINY_FILE = "tinyclip.pt"
#: the kit's standard TinyCLIP settings for :func:`get_tiny_clip`: a step budget (300 steps, ~90 s on one CPU core),
#: so it is the same model on every machine; lessons 05 and 08 and the tests share it through the cache
STANDARD_TINY_CLIP = {"seconds": 3000.0, "max_steps": 300}


# ---------------------------------------------------------------------------------------------------- the model
class TinyCLIP(nn.Module):
    """Two small towers with CLIP's interface: ``encode_text(tokens)``, ``encode_image(pixels)``, ``logit_scale``.

    Args:
        vocab_ids: the CLIP BPE ids that get their own embedding (any other id reads ``<unk>``).
        embed_dim: size of the joint embedding.
        width: text transformer width; ``layers``/``heads`` its depth and heads.
        channels: image channels the CNN reads (CLIP preprocessing always gives 3).
        cnn_width: channels of the first convolution (doubled twice).
    """

    def __init__(self, vocab_ids: list[int] | Tensor, embed_dim: int = 64, width: int = 96, layers: int = 2,
                 heads: int = 4, context_length: int = 77, channels: int = 3, cnn_width: int = 24) -> None:
        super().__init__()
        vocab_ids = torch.as_tensor(vocab_ids, dtype=torch.long)
        self.config = {"embed_dim": embed_dim, "width": width, "layers": layers, "heads": heads,
                       "context_length": context_length, "channels": channels, "cnn_width": cnn_width,
                       "vocab_size": int(len(vocab_ids))}
        self.context_length = context_length
        self.register_buffer("vocab_ids", vocab_ids.clone())
        lut = torch.zeros(49408, dtype=torch.long)  # CLIP id -> own id (0 = <unk>)
        lut[vocab_ids] = torch.arange(1, len(vocab_ids) + 1)
        self.register_buffer("lut", lut, persistent=False)  # rebuilt from vocab_ids, not stored
        self.token_embedding = nn.Embedding(len(vocab_ids) + 1, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Linear(width, embed_dim, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

        c = cnn_width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        # one convolution per resolution keeps a training step cheap on a CPU (28 -> 14 -> 7 -> 2x2 pooled)
        self.visual = nn.Sequential(
            *block(channels, c), nn.MaxPool2d(2),
            *block(c, 2 * c), nn.MaxPool2d(2),
            *block(2 * c, 4 * c), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16 * c, 4 * c), nn.ReLU(inplace=True), nn.Linear(4 * c, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def own_ids(self, tokens: Tensor) -> Tensor:
        """CLIP BPE ids -> TinyCLIP vocabulary ids (negative ids, used for word dropout, read ``<unk>``)."""
        return torch.where(tokens < 0, torch.zeros_like(tokens), self.lut[tokens.clamp_min(0)])

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Raw text features ``[N, embed_dim]`` from CLIP token rows ``[N, L]`` (the end marker has the top id)."""
        eot = tokens.argmax(dim=-1)
        length = int(eot.max()) + 1  # drop padding columns: the tiny transformer only reads what is there
        tokens = tokens[:, :length]
        x = self.token_embedding(self.own_ids(tokens)) + self.positional_embedding[:length]
        pad = torch.arange(length, device=tokens.device)[None, :] > eot[:, None]
        x = self.transformer(x, src_key_padding_mask=pad)
        x = self.ln_final(x[torch.arange(len(x), device=x.device), eot])
        return self.text_projection(x)

    def encode_image(self, pixels: Tensor) -> Tensor:
        """Raw image features ``[N, embed_dim]`` from preprocessed pixels ``[N, 3, 28, 28]``."""
        return self.visual(pixels)


# ----------------------------------------------------------------------------------------------- the encoder
class TinyClipEncoder(ClipEncoder):
    """:class:`ClipEncoder` around a :class:`TinyCLIP` (28x28 input, mean/std 0.5, bilinear resize)."""

    def __init__(self, model: TinyCLIP, device: str | torch.device = "cpu", name: str = "tiny",
                 weights_id: str | None = None, meta: dict[str, Any] | None = None) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        self.meta = dict(meta or {})
        super().__init__(name, device, int(model.config["embed_dim"]), weights_id)

    @property
    def input_resolution(self) -> int:
        return 28

    @property
    def mean(self) -> tuple[float, float, float]:
        return (0.5, 0.5, 0.5)

    @property
    def std(self) -> tuple[float, float, float]:
        return (0.5, 0.5, 0.5)

    @property
    def interpolation(self) -> str:
        return "bilinear"

    @property
    def resize_mode(self) -> str:
        return "squash"

    def _encode_text_tokens(self, tokens: Tensor) -> Tensor:
        return self.model.encode_text(tokens)

    def _encode_image_pixels(self, pixels: Tensor) -> Tensor:
        return self.model.encode_image(pixels)


# ---------------------------------------------------------------------------------------------- caption pools
def build_caption_pool(dataset: str, labels: Tensor, descriptors: dict[str, Tensor], per_bucket: int = 48,
                       seed: int = 0, p_unk: float = 0.3) -> tuple[Tensor, Tensor, list[int]]:
    """Pre-tokenised captions for every (class, descriptor tertiles) bucket.

    Tokenising per step would cost more than the model, so each bucket gets ``per_bucket`` captions once; a step
    picks one at random per image.  A fraction ``p_unk`` of captions get 1-2 ``<unk>`` pieces (id ``-1``) inserted
    at random places (word dropout).

    Returns ``(tokens LongTensor[B, per_bucket, L], bucket_of_image LongTensor[N], vocab CLIP ids)``.
    """
    from .text import tokenize

    rng = random.Random(seed)
    names = list(cap.DESCRIPTORS[dataset])
    num_classes = len(cap.SYNONYMS[dataset])
    n_buckets = num_classes * 3 ** len(names)
    bucket = labels.clone().long()
    for name in names:
        bucket = bucket * 3 + descriptors[name].long()
    texts = []
    for b in range(n_buckets):
        rest, tert = b, {}
        for name in reversed(names):
            tert[name] = rest % 3
            rest //= 3
        texts += [cap.caption(dataset, rest, tert, rng=rng) for _ in range(per_bucket)]
    tokens = tokenize(texts)
    vocab = sorted(set(tokens.unique().tolist()) - {0})
    eot = tokens.argmax(-1)
    length = int(eot.max()) + 3
    out = torch.zeros(len(texts), length, dtype=torch.long)
    for i in range(len(texts)):
        row = tokens[i, :eot[i] + 1].tolist()
        if rng.random() < p_unk:
            for _ in range(rng.randint(1, 2)):
                row.insert(rng.randint(1, len(row) - 1), -1)
        out[i, :len(row)] = torch.tensor(row)
    return out.view(n_buckets, per_bucket, length), bucket, vocab


def _caption_vocab(dataset: str) -> list[int]:
    """Every CLIP id that the caption tables of ``dataset`` can produce (training templates only)."""
    from .text import encode_ids

    words = list(cap.templates(dataset))
    for syns in cap.SYNONYMS[dataset]:
        for noun in syns:
            words += [w for w in (noun.singular, noun.plural) if w]
    for adjs in cap.CLASS_ADJECTIVES[dataset]:
        words += adjs
    for low, high in cap.DESCRIPTORS[dataset].values():
        words += low + high
    words += ["a an the one some pair of number digit numeral"]
    ids: set[int] = set()
    for w in words:
        ids.update(encode_ids(w.replace("{}", " ")))
    return sorted(ids)


# ------------------------------------------------------------------------------------------------- training
def clip_loss(logits: Tensor, targets: Tensor | None = None) -> Tensor:
    """CLIP's symmetric contrastive loss (Radford et al. 2021) of ``logits`` ``[B, B]`` = cosines / tau.

    Row i of ``logits`` scores image (or text) i against every text (image) of the batch; pair i is the match.  The
    loss is the mean of the two cross-entropies, rows (each image picks its text) and columns (each text picks its
    image).  ``targets`` (symmetric, rows summing to 1) replaces the identity when several pairs of a batch match
    (TinyCLIP: captions of the same class).
    """
    if targets is None:
        targets = torch.eye(len(logits), device=logits.device)
    return 0.5 * (torch.sum(-targets * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-targets * F.log_softmax(logits.T, 1), 1).mean())


def _soft_targets(labels: Tensor, self_weight: float = 1.0) -> Tensor:
    same = (labels[:, None] == labels[None, :]).float()
    t = same + self_weight * torch.eye(len(labels), device=labels.device)
    return t / t.sum(1, keepdim=True)


@torch.enable_grad()  # trains even when called under torch.no_grad() (e.g. from an evaluation)
def train_tiny_clip(dataset: str = "mnist", root: str | os.PathLike | None = None, seconds: float = 150.0,
                    embed_dim: int = 64, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
                    device: str | torch.device | None = None, data: Any = None, max_steps: int | None = None,
                    progress: bool = True) -> TinyClipEncoder:
    """Train a TinyCLIP contrastively on ``dataset``'s training images and generated captions.

    Args:
        dataset: ``"mnist"`` or ``"fashion-mnist"`` (the caption vocabulary exists for these).
        root: data folder (see :func:`cvaelib.data.load_dataset`).
        seconds: wall-clock training budget (the learning rate follows a cosine over it).
        data: an :class:`~cvaelib.data.ImageData` to train on instead of the full training split.
        max_steps: optional step limit (whichever of time and steps comes first).
    Returns:
        a :class:`TinyClipEncoder` in eval mode; ``encoder.meta`` holds steps, seconds and settings.
    """
    from ..data import load_dataset
    from ..device import cpu_has_fast_bf16, pick_device

    cap.check_captioned(dataset)
    if seconds <= 0:
        raise KitError(f"seconds must be > 0, got {seconds}")
    device = pick_device(device)
    torch.manual_seed(seed)
    train = data if data is not None else load_dataset(dataset, root, "train")
    desc = cap.image_descriptors(dataset, train.images, train.labels)
    pool, bucket, pool_vocab = build_caption_pool(dataset, train.labels, desc, seed=seed)
    vocab = sorted(set(pool_vocab) | set(_caption_vocab(dataset)) - {0})
    model = TinyCLIP(vocab, embed_dim=embed_dim).to(device, memory_format=torch.channels_last).train()
    # the image tower runs in bfloat16 on CPUs with native bf16 units (2.4x faster with channels-last maps); the
    # text transformer stays in float32, which is faster for its short sequences
    image_bf16 = device.type == "cpu" and cpu_has_fast_bf16()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr)
    images = train.images.to(device)
    labels = train.labels.to(device)
    pool, bucket = pool.to(device), bucket.to(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n = len(train)
    warmup = 50
    step, t0 = 0, time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=None, disable=not progress, desc="TinyCLIP", unit="step", mininterval=1.0)
    losses: list[float] = []
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds or (max_steps is not None and step >= max_steps):
            break
        # the learning rate follows a cosine over the step budget when there is one (reproducible), else over time
        frac = step / max_steps if max_steps is not None else elapsed / seconds
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        idx = torch.randint(0, n, (batch_size,), generator=gen).to(device)
        x = images[idx].float().div_(255.0)
        # small random shifts: the image tower should judge shapes, and later also read generated samples
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        x = ((x - 0.5) / 0.5).expand(-1, 3, -1, -1) if x.shape[1] == 1 else (x - 0.5) / 0.5
        pick = torch.randint(0, pool.shape[1], (batch_size,), generator=gen).to(device)
        tokens = pool[bucket[idx], pick]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=image_bf16):
            img = F.normalize(model.encode_image(x.contiguous(memory_format=torch.channels_last)).float(), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        loss = clip_loss(logits, _soft_targets(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / 20:.3f}", refresh=False)
    bar.close()
    meta = {"dataset": dataset, "steps": step, "seconds": round(time.perf_counter() - t0, 1),
            "batch_size": batch_size, "train_images": n, "seed": seed,
            "final_loss": float(sum(losses[-50:]) / max(1, len(losses[-50:])))}
    model.eval()
    return TinyClipEncoder(model, device, name=f"tiny:{dataset}", meta=meta)


# ------------------------------------------------------------------------------------------------- save / load
def save_tiny_clip(encoder: TinyClipEncoder, path: str | os.PathLike) -> Path:
    """Write a TinyCLIP as a kit checkpoint (atomic, loadable with ``weights_only=True``)."""
    from ..checkpoint import save_checkpoint

    path = Path(path)
    if path.suffix != ".pt":
        path = path / TINY_FILE
    model = encoder.model
    return save_checkpoint(path, {"config": {"model": "tinyclip", **model.config},
                                  "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                                  "meta": dict(encoder.meta)})


def load_tiny_clip(path: str | os.PathLike, device: str | torch.device | None = None) -> TinyClipEncoder:
    """Load a TinyCLIP checkpoint (a file, or a run folder holding ``tinyclip.pt``) as a :class:`ClipEncoder`."""
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError
    from ..device import pick_device

    p = Path(path)
    if p.is_dir():
        p = p / TINY_FILE
    if not p.is_file():
        raise CheckpointError(f"no TinyCLIP checkpoint at {p}; train one with "
                              f"cvaelib.clip.tiny.train_tiny_clip(...) and save_tiny_clip(...)")
    device = pick_device(device)
    payload = load_checkpoint(p)
    config = dict(payload["config"])
    if config.pop("model", None) != "tinyclip":
        raise CheckpointError(f"{p} is a kit checkpoint but not a TinyCLIP one; pass a tinyclip.pt file")
    config.pop("vocab_size", None)
    model = TinyCLIP(payload["state_dict"]["vocab_ids"], **config)
    model.load_state_dict(payload["state_dict"])
    meta = payload.get("meta", {})
    return TinyClipEncoder(model, device, name=f"tiny:{meta.get('dataset', p.stem)}",
                           weights_id=hashlib.sha1(p.read_bytes()).hexdigest()[:16], meta=meta)


def get_tiny_clip(dataset: str, root: str | os.PathLike | None = None, seconds: float = 150.0, seed: int = 0,
                  embed_dim: int = 64, max_steps: int | None = None, cache_dir: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, progress: bool = True,
                  build: bool = True) -> TinyClipEncoder | None:
    """A TinyCLIP for ``dataset``, trained once with these settings and cached (like the judge classifier).

    The cache (``$CVAELIB_CACHE`` or ``~/.cache/cvaelib``) is keyed by the data, ``seconds``, ``max_steps``,
    ``seed`` and ``embed_dim``; a broken cache file is retrained, never trusted.  ``build=False`` only loads: it
    returns None when no readable cached model exists (a SMOKE run then trains a quick one instead).
    """
    from ..cache import default_cache_dir, load_or_build
    from ..data import load_dataset

    train = load_dataset(dataset, root, "train")
    key = hashlib.sha1(train.images.numpy().tobytes()[:1 << 20]
                       + f"{len(train)}-{seconds}-{max_steps}-{seed}-{embed_dim}-v1".encode()).hexdigest()[:12]
    path = Path(cache_dir or default_cache_dir()) / f"tinyclip-{train.name}-{key}.pt"
    if not build:
        try:
            return load_tiny_clip(path, device) if path.is_file() else None
        except Exception:  # noqa: BLE001 - an unreadable cache file counts as missing
            return None

    def build(p: Path) -> TinyClipEncoder:
        enc = train_tiny_clip(dataset, root, seconds=seconds, seed=seed, embed_dim=embed_dim, data=train,
                              max_steps=max_steps, device=device, progress=progress)
        save_tiny_clip(enc, p)
        return enc

    return load_or_build(path, lambda p: load_tiny_clip(p, device), build, what=f"TinyCLIP for {train.name}")


# --------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def class_text_embeddings(encoder: ClipEncoder, dataset: str, heldout: bool = True,
                          synonyms: bool = True) -> Tensor:
    """One unit vector per class: the mean text embedding of the class's prompts (CLIP's prompt ensembling)."""
    n = len(cap.SYNONYMS[cap.check_captioned(dataset)])
    protos = [encoder.encode_text(cap.class_prompts(dataset, k, heldout, synonyms)).mean(0) for k in range(n)]
    return F.normalize(torch.stack(protos), dim=-1)


@torch.no_grad()
def zero_shot_accuracy(encoder: ClipEncoder, data: Any, dataset: str | None = None,
                       heldout: bool = True) -> tuple[float, list[float]]:
    """Zero-shot accuracy of ``encoder`` on ``data`` (an ImageData) with held-out prompt templates.

    Returns ``(overall, per_class)``.
    """
    dataset = dataset or data.name
    protos = class_text_embeddings(encoder, dataset, heldout)
    img = encoder.encode_images(data.float_images())
    pred = (img @ protos.T).argmax(1)
    labels = data.labels.cpu()
    per_class = [float((pred[labels == k] == k).float().mean()) if (labels == k).any() else float("nan")
                 for k in range(len(protos))]
    return float((pred == labels).float().mean()), per_class


__all__ = ["STANDARD_TINY_CLIP", "TINY_FILE", "TinyCLIP", "TinyClipEncoder", "build_caption_pool", "class_text_embeddings", "clip_loss",
           "get_tiny_clip", "load_tiny_clip", "save_tiny_clip", "train_tiny_clip", "zero_shot_accuracy"]
