"""CLIP in the kit: load any CLIP as a :class:`ClipEncoder`, encode texts and images in batches, cache embeddings.

>>> from cvaelib.clip import load_clip, cached_image_embeddings
>>> enc = load_clip("ViT-B/32")                          # or a .pt path, "open_clip:ViT-B-32/openai", "tiny:ckpt.pt"
>>> t = enc.encode_text(["a red dress", "a pair of sandals"])   # [2, 512], unit length, CPU float32
>>> e = cached_image_embeddings(enc, images, "cache/fashion_train")

Importing this package imports neither ``clip`` nor ``open_clip``; they load when first needed.
"""

from .cache import cached_image_embeddings
from .encoder import (CLIP_MEAN, CLIP_STD, ClipEncoder, OpenAIClipEncoder, OpenClipEncoder, resize_and_crop,
                      trimmed_length)
from .load import OPENAI_TO_OPEN_CLIP, file_fingerprint, load_clip, load_open_clip
from .packages import import_clip_module
from .text import CONTEXT_LENGTH, split_sentences, tokenize

__all__ = [
    "CLIP_MEAN", "CLIP_STD", "CONTEXT_LENGTH", "ClipEncoder", "OPENAI_TO_OPEN_CLIP", "OpenAIClipEncoder",
    "OpenClipEncoder", "cached_image_embeddings", "file_fingerprint", "import_clip_module", "load_clip",
    "load_open_clip", "resize_and_crop", "split_sentences", "tokenize", "trimmed_length",
]
