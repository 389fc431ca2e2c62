"""``ClipEncoder``: one object that turns texts and image tensors into L2-normalised CLIP embeddings.

Every CLIP in the kit (OpenAI's ``clip`` package, ``open_clip``, the offline TinyCLIP) is wrapped in a subclass, so
the rest of the kit (datasets of embeddings, the CLIP-conditioned CVAE, CLIP score) takes a ``ClipEncoder`` and
never cares where the weights came from.

Two things the kit's sources did slowly or not at all are done here once:

* **batching**: texts and images are encoded ``batch_size`` at a time, never one forward pass per sentence;
* **tensor preprocessing**: CLIP's own preprocessing (bicubic resize of the shorter side, centre crop, CLIP's
  mean/std) is written as tensor operations, so a whole batch of ``[N, C, H, W]`` images in [0, 1] (grey ones are
  repeated to three channels) is prepared on the GPU in one go instead of image by image through PIL.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import KitError
from . import text as _text

#: Normalisation constants of OpenAI's CLIP (also open_clip's ``OPENAI_DATASET_MEAN/STD``).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

LONG_TEXT_MODES = ("truncate", "average")
CPU_TEXT_CHUNK = 64


class ClipEncoder:
    """Base class: batched, normalised CLIP text and image embeddings from any CLIP-like model.

    Public API (what the kit calls)::

        enc.name: str               # identifies model + weights, e.g. "ViT-B/32", "open_clip:ViT-B-32/openai"
        enc.embed_dim: int          # D, the size of the joint embedding
        enc.device: torch.device    # where the model runs; results always come back on CPU
        enc.encode_text(texts, batch_size=256, long_text="truncate") -> FloatTensor[N, D]
        enc.encode_images(images, batch_size=256) -> FloatTensor[N, D]
        enc.tokenize(texts) -> LongTensor[N, context_length]
        enc.preprocess(images) -> FloatTensor[N, 3, R, R]   # on enc.device, normalised
        enc.preprocessing -> dict                            # description stored in embedding caches

    Hook contract (what a subclass such as TinyCLIP implements)::

        _encode_text_tokens(tokens: LongTensor[N, L]) -> Tensor[N, D]
            tokens are on ``self.device``; return raw (un-normalised) text features, any float dtype/device.
        _encode_image_pixels(pixels: FloatTensor[N, 3, H, W]) -> Tensor[N, D]
            pixels are on ``self.device``, float32, already preprocessed (resized/cropped to ``input_size`` and
            normalised with ``mean``/``std``); cast to the model's dtype if it is not float32; return raw features.
        input_resolution: int                      # property, R (square input)
        mean: tuple[float, float, float]           # property, per-channel normalisation mean
        std: tuple[float, float, float]            # property, per-channel normalisation std

    Optional overrides: ``context_length`` (77), ``interpolation`` ("bicubic"; or "bilinear"), ``resize_mode``
    ("shortest": resize the shorter side then centre-crop; "squash"; "longest": resize the longer side and pad),
    ``input_size`` ((R, R)), ``tokenize`` (default: CLIP's BPE with truncation) and ``uses_clip_bpe`` (True when
    ``tokenize`` is CLIP's BPE, which lets long-text mode cut over-long sentences into windows instead of truncating).

    ``_encode_text_tokens`` receives rows sorted by length; a causal text tower that pools at the end-of-text
    token may run only ``tokens[:, :trimmed_length(tokens)]`` (exact, and several times faster for short prompts).

    The base class calls the hooks under ``torch.no_grad()``, in batches, and L2-normalises the float32 results.
    Subclasses call ``super().__init__(name, device, embed_dim)``.
    """

    uses_clip_bpe: bool = True

    def __init__(self, name: str, device: str | torch.device, embed_dim: int, weights_id: str | None = None) -> None:
        self.name = str(name)
        self.device = torch.device(device)
        self.embed_dim = int(embed_dim)
        #: Fingerprint of the weights file when they came from one (lets caches notice retrained weights).
        self.weights_id = weights_id

    # ------------------------------------------------------------------ hooks
    def _encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_image_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def input_resolution(self) -> int:
        raise NotImplementedError

    @property
    def mean(self) -> tuple[float, float, float]:
        return CLIP_MEAN

    @property
    def std(self) -> tuple[float, float, float]:
        return CLIP_STD

    @property
    def context_length(self) -> int:
        return _text.CONTEXT_LENGTH

    @property
    def interpolation(self) -> str:
        return "bicubic"

    @property
    def resize_mode(self) -> str:
        return "shortest"

    @property
    def input_size(self) -> tuple[int, int]:
        r = int(self.input_resolution)
        return (r, r)

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Token ids ``LongTensor[N, context_length]``; over-long texts are truncated (never an error)."""
        return _text.tokenize(texts if isinstance(texts, str) else list(texts), self.context_length, truncate=True)

    # ------------------------------------------------------------------ text
    def encode_text(self, texts: str | Sequence[str], batch_size: int = 256,
                    long_text: str = "truncate") -> torch.Tensor:
        """L2-normalised text embeddings, ``FloatTensor[N, D]`` on CPU (N = 1 for a single string).

        ``long_text="truncate"``: each text is one forward row, cut at CLIP's 77-token context.
        ``long_text="average"``: each text is split into sentences (over-long sentences into 75-token windows), all
        pieces of all texts are encoded in the same batches, and a text's embedding is the re-normalised mean of its
        pieces' normalised embeddings (the long-text method of the kit's sources, done batched).

        Repeated texts are encoded once; rows are sorted by length so that encoders which skip the padding after the
        last end-of-text token (OpenAI and open_clip adapters, see :func:`trimmed_length`) do less work.
        """
        if long_text not in LONG_TEXT_MODES:
            raise KitError(f"long_text must be one of {LONG_TEXT_MODES}, got {long_text!r}")
        texts = _text._as_list(texts)
        _check_batch_size(batch_size)
        if not texts:
            return torch.zeros(0, self.embed_dim)
        # Encode each distinct text once (prompt lists often repeat, e.g. one class prompt per training image).
        unique = list(dict.fromkeys(texts))
        if len(unique) < len(texts):
            where = {t: i for i, t in enumerate(unique)}
            index = torch.tensor([where[t] for t in texts], dtype=torch.long)
            return self.encode_text(unique, batch_size, long_text)[index]
        if long_text == "truncate":
            return self._encode_token_rows(self.tokenize(texts), batch_size)
        rows, owner = self._long_text_rows(texts)
        pieces = self._encode_token_rows(rows, batch_size)
        summed = torch.zeros(len(texts), pieces.shape[1]).index_add_(0, owner, pieces)
        return F.normalize(summed, dim=-1)

    def _long_text_rows(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.uses_clip_bpe:
            return _text.long_text_rows(texts, self.context_length)
        # A non-CLIP tokenizer (some open_clip models): sentences only, each truncated by the model's tokenizer.
        sentences, owner = [], []
        for i, t in enumerate(texts):
            for s in _text.split_sentences(t):
                sentences.append(s)
                owner.append(i)
        return self.tokenize(sentences), torch.tensor(owner, dtype=torch.long)

    @torch.no_grad()
    def _encode_token_rows(self, tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
        if tokens.shape[0] == 0:
            return torch.zeros(0, self.embed_dim)
        # Batch rows of similar length together: encoders that trim padding (trimmed_length) then do less work.
        order = torch.argsort(tokens.argmax(dim=-1), stable=True)
        # On CPU, chunks of at most 64 rows trim tighter and stay in cache: measured 1.5x less CPU time than 256
        # for 512 prompts (benchmarks/clip_text.py); on a GPU the full batch_size keeps the device busy.
        step = batch_size if self.device.type != "cpu" else min(batch_size, CPU_TEXT_CHUNK)
        out = torch.empty(tokens.shape[0], self.embed_dim)
        for i in range(0, tokens.shape[0], step):
            idx = order[i:i + step]
            out[idx] = _finish(self._encode_text_tokens(tokens[idx].to(self.device, non_blocking=True)))
        return out

    # ------------------------------------------------------------------ images
    @property
    def preprocessing(self) -> dict[str, Any]:
        """What ``preprocess`` does, as data (stored in embedding caches so a change invalidates them)."""
        return {"size": list(self.input_size), "resize_mode": self.resize_mode, "interpolation": self.interpolation,
                "mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std],
                "input": "float [0,1] NCHW, grey repeated to RGB"}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP preprocessing of a batch: ``[N, C, H, W]`` in [0, 1] (or uint8) -> normalised ``[N, 3, h, w]``.

        Runs on ``self.device``: resize (bicubic, antialiased like PIL), centre crop, clamp, mean/std.
        """
        return self._preprocess(_check_images(images))

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True)  # already checked by the caller
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = resize_and_crop(x, self.input_size, self.resize_mode, self.interpolation)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """L2-normalised image embeddings, ``FloatTensor[N, D]`` on CPU.

        ``images``: ``[N, C, H, W]`` (or one ``[C, H, W]``) float in [0, 1] or uint8, C = 1 or 3, any size;
        preprocessed with the model's own settings ``batch_size`` images at a time.
        """
        images = _check_images(images)
        _check_batch_size(batch_size)
        out = [_finish(self._encode_image_pixels(self._preprocess(images[i:i + batch_size])))
               for i in range(0, images.shape[0], batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.embed_dim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, embed_dim={self.embed_dim}, device={str(self.device)!r})"


# ---------------------------------------------------------------------- helpers
def _finish(features: torch.Tensor) -> torch.Tensor:
    """float32, CPU, unit length (normalise in float32: fp16 features would lose precision)."""
    return F.normalize(features.float(), dim=-1).cpu()


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise KitError(f"batch_size must be a positive int, got {batch_size!r}")


def _check_images(images: Any) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise KitError(f"images must be a torch.Tensor [N, C, H, W] in [0, 1], got {type(images).__name__}; "
                       "convert PIL images with torchvision.transforms.functional.to_tensor")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise KitError(f"images must be [N, C, H, W] with C = 1 or 3, got shape {list(images.shape)}")
    if images.dtype != torch.uint8:
        if not images.is_floating_point():
            raise KitError(f"images must be float in [0, 1] or uint8, got {images.dtype}")
        if images.numel():
            lo, hi = float(images.min()), float(images.max())
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise KitError(f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                               "pass unnormalised images (the encoder applies CLIP's mean/std itself)")
    return images


def resize_and_crop(x: torch.Tensor, size: tuple[int, int], resize_mode: str = "shortest",
                    interpolation: str = "bicubic") -> torch.Tensor:
    """Batch version of CLIP's ``Resize`` + ``CenterCrop`` on float images ``[N, 3, H, W]`` in [0, 1].

    ``shortest``: shorter side to the target, then centre crop (OpenAI CLIP); ``squash``: straight to the target;
    ``longest``: longer side to the target, then zero padding.  Antialiased like PIL; the result is clamped to
    [0, 1] because bicubic overshoots at edges (PIL clamps when it rounds to uint8).
    """
    th, tw = int(size[0]), int(size[1])
    h, w = x.shape[-2:]
    if (h, w) == (th, tw):
        return x
    mode = {"bicubic": "bicubic", "bilinear": "bilinear"}.get(interpolation)
    if mode is None:
        raise KitError(f"unsupported interpolation {interpolation!r}; use 'bicubic' or 'bilinear'")

    def _resize(t: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        if (nh, nw) == tuple(t.shape[-2:]):
            return t
        # antialias only matters (and is only defined) when shrinking
        shrink = nh < t.shape[-2] or nw < t.shape[-1]
        return F.interpolate(t, size=(nh, nw), mode=mode, align_corners=False, antialias=shrink)

    if resize_mode == "squash":
        return _resize(x, th, tw).clamp(0, 1)
    if resize_mode == "shortest":
        scale = max(th / h, tw / w)
    elif resize_mode == "longest":
        scale = min(th / h, tw / w)
    else:
        raise KitError(f"unsupported resize_mode {resize_mode!r}; use 'shortest', 'squash' or 'longest'")
    if th == tw:
        # torchvision's rule for Resize(int): the shorter (longer) side becomes exactly the target
        short, long = (h, w) if h <= w else (w, h)
        target_short = th if resize_mode == "shortest" else int(th * short / long)
        target_long = int(target_short * long / short) if resize_mode == "shortest" else th
        nh, nw = (target_short, target_long) if h <= w else (target_long, target_short)
    else:
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = _resize(x, nh, nw).clamp(0, 1)
    if resize_mode == "shortest":
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        return x[..., top:top + th, left:left + tw]
    pad_h, pad_w = th - nh, tw - nw
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


# ---------------------------------------------------------------------- adapters
class OpenAIClipEncoder(ClipEncoder):
    """Wraps a ``clip.model.CLIP`` (OpenAI's package, any source of weights)."""

    def __init__(self, model: torch.nn.Module, name: str, device: str | torch.device,
                 weights_id: str | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        super().__init__(name, device, int(model.text_projection.shape[1]), weights_id)

    @property
    def input_resolution(self) -> int:
        return int(self.model.visual.input_resolution)

    @property
    def context_length(self) -> int:
        return int(self.model.context_length)

    def _encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        blocks = getattr(getattr(m, "transformer", None), "resblocks", None)
        parts = ("ln_1", "attn", "mlp", "ln_2", "attn_mask")
        if blocks is None or not all(hasattr(b, a) for b in blocks for a in parts):
            return m.encode_text(tokens)  # not the layout of clip.model.CLIP: use the model's own forward
        # Same computation as CLIP.encode_text, on the first L positions only (see trimmed_length).
        n = trimmed_length(tokens)
        t = tokens[:, :n]
        x = m.token_embedding(t).type(m.dtype) + m.positional_embedding[:n].type(m.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND, as clip's blocks expect
        for b in blocks:
            mask = None if b.attn_mask is None else b.attn_mask[:n, :n].to(dtype=x.dtype, device=x.device)
            h = b.ln_1(x)
            x = x + b.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
            x = x + b.mlp(b.ln_2(x))
        x = m.ln_final(x.permute(1, 0, 2)).type(m.dtype)
        return x[torch.arange(x.shape[0], device=x.device), t.argmax(dim=-1)] @ m.text_projection

    def _encode_image_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels.to(self.model.dtype))


def trimmed_length(tokens: torch.Tensor) -> int:
    """How many leading positions CLIP's text tower needs for these token rows.

    CLIP's text transformer is causal (position i sees positions <= i) and reads the embedding at the end-of-text
    token (the largest id).  Positions after the last end-of-text token of the batch therefore never influence the
    result, and a typical 10-20-token prompt need not pay for all 77 positions: cutting them is exact and several
    times faster.
    """
    return int(tokens.argmax(dim=-1).max().item()) + 1 if tokens.numel() else tokens.shape[-1]


class OpenClipEncoder(ClipEncoder):
    """Wraps an ``open_clip`` model with its tokenizer and preprocessing configuration."""

    def __init__(self, model: torch.nn.Module, name: str, device: str | torch.device, tokenizer: Any,
                 weights_id: str | None = None) -> None:
        import open_clip  # type: ignore[import-not-found]

        self.model = model.eval().requires_grad_(False)
        self._tokenizer = tokenizer
        self.uses_clip_bpe = isinstance(tokenizer, open_clip.tokenizer.SimpleTokenizer)
        cfg = dict(open_clip.get_model_preprocess_cfg(model))
        size = cfg.get("size", getattr(model.visual, "image_size", 224))
        self._size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self._mean = tuple(float(m) for m in cfg.get("mean", CLIP_MEAN))
        self._std = tuple(float(s) for s in cfg.get("std", CLIP_STD))
        self._interpolation = cfg.get("interpolation", "bicubic") or "bicubic"
        self._resize_mode = cfg.get("resize_mode", "shortest") or "shortest"
        self._context = int(getattr(tokenizer, "context_length", None) or getattr(model, "context_length", 77))
        super().__init__(name, device, _open_clip_embed_dim(model, tokenizer, device), weights_id)

    @property
    def input_resolution(self) -> int:
        return self._size[0]

    @property
    def input_size(self) -> tuple[int, int]:
        return self._size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self._mean  # type: ignore[return-value]

    @property
    def std(self) -> tuple[float, float, float]:
        return self._std  # type: ignore[return-value]

    @property
    def interpolation(self) -> str:
        return self._interpolation

    @property
    def resize_mode(self) -> str:
        return self._resize_mode

    @property
    def context_length(self) -> int:
        return self._context

    def tokenize(self, texts: str | Sequence[str]) -> torch.Tensor:
        if self.uses_clip_bpe:
            return super().tokenize(texts)
        return self._tokenizer(_text._as_list(texts)).long()

    def _encode_text_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        m = self.model
        causal_argmax = (isinstance(getattr(m, "attn_mask", None), torch.Tensor)
                         and getattr(m, "text_pool_type", None) == "argmax"
                         and all(hasattr(m, a) for a in ("token_embedding", "positional_embedding", "ln_final")))
        if not causal_argmax:
            return m.encode_text(tokens)
        from open_clip.transformer import text_global_pool  # type: ignore[import-not-found]

        # open_clip's CLIP.encode_text on the first L positions only (exact: see trimmed_length)
        n = trimmed_length(tokens)
        t = tokens[:, :n]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(t).to(cast) + m.positional_embedding[:n].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
        x = text_global_pool(x, t, "argmax")
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
        return x

    def _encode_image_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        return self.model.encode_image(pixels.to(dtype))


def _open_clip_embed_dim(model: torch.nn.Module, tokenizer: Any, device: str | torch.device) -> int:
    proj = getattr(model, "text_projection", None)
    if isinstance(proj, torch.Tensor) and proj.dim() == 2:
        return int(proj.shape[1])
    if isinstance(proj, torch.nn.Linear):
        return int(proj.out_features)
    out = getattr(getattr(model, "visual", None), "output_dim", None)
    if isinstance(out, int):
        return out
    with torch.no_grad():  # last resort: measure it
        return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])

