"""An autoregressive prior over a VQ-VAE's grid of code indices (lesson 09).

A VQ-VAE's encoder turns an image into a small grid of integers (7x7 for 28x28 images).  The VQ-VAE itself says
nothing about which grids are likely, so new images need a second model ``p(codes | class)``.  Reading the grid in
raster order turns it into a sentence of 49 "words", and a tiny causal transformer (GPT-style, Radford et al. 2018;
Vaswani et al. 2017) learns ``p(code_t | code_<t, class)`` with plain cross-entropy.  The class enters as the first
token (and is added to every position), so one prior serves all classes; sampling draws one code at a time.

van den Oord et al. (2017), "Neural Discrete Representation Learning", https://arxiv.org/abs/1711.00937, used a
PixelCNN for this prior; VQGAN (Esser et al. 2021, https://arxiv.org/abs/2012.09841) used a transformer, as here.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import KitError


class CodePrior(nn.Module):
    """Class-conditional causal transformer over ``length`` code indices.

    Args:
        num_codes: codebook size K (the vocabulary).
        length: number of positions (``h * w`` of the code grid).
        num_classes: classes of the condition; 0 for an unconditional prior (one shared start token).
        dim, layers, heads: transformer width, depth and attention heads.
        dropout: dropout inside the transformer (regularises the small prior on small data).
    """

    def __init__(self, num_codes: int, length: int, num_classes: int = 0, dim: int = 128, layers: int = 2,
                 heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise KitError(f"prior dim {dim} must be divisible by prior heads {heads}")
        self.num_codes, self.length, self.num_classes = int(num_codes), int(length), int(num_classes)
        self.token = nn.Embedding(num_codes, dim)
        self.start = nn.Embedding(max(num_classes, 1), dim)  # the class is the first token of the sentence
        self.position = nn.Parameter(torch.zeros(1, length, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        # causal mask: position t may attend to positions <= t only
        self.register_buffer("mask", torch.triu(torch.full((length, length), float("-inf")), diagonal=1),
                             persistent=False)

    def _start(self, n: int, c: Tensor | None, device: torch.device) -> Tensor:
        if self.num_classes == 0:
            return self.start(torch.zeros(n, dtype=torch.long, device=device))
        if c is None:
            raise KitError("this prior is class-conditional: pass one class id per sample")
        c = c.to(device).long()
        if c.min() < 0 or c.max() >= self.num_classes:
            raise KitError(f"class ids must be in 0..{self.num_classes - 1}")
        return self.start(c)

    def forward(self, codes: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits ``[B, T, K]`` for positions ``0..T-1`` given the first ``T-1`` codes (``codes``: ``[B, T]``)."""
        b, t = codes.shape
        start = self._start(b, c, codes.device)[:, None]
        # the class is the first token *and* is added at every position: the prior cannot ignore it, which makes
        # class-correct samples come after far fewer training steps than a start token alone
        x = torch.cat([start, self.token(codes[:, :t - 1])], dim=1) + self.position[:, :t] + start
        x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)
        return self.head(self.norm(x))

    def loss(self, codes: Tensor, c: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood per code (nats); ``codes`` ``[B, length]``."""
        logits = self(codes, c)
        return F.cross_entropy(logits.reshape(-1, self.num_codes).float(), codes.reshape(-1))

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, top_k: int | None = None) -> Tensor:
        """``n`` code sequences ``[n, length]`` drawn one position at a time.

        ``temperature`` < 1 and ``top_k`` trade variety for typical samples.
        """
        if temperature <= 0:
            raise KitError(f"temperature must be > 0, got {temperature}")
        device = self.position.device
        was_training = self.training
        self.eval()
        codes = torch.zeros(n, 0, dtype=torch.long, device=device)
        start = self._start(n, c, device)[:, None]
        for t in range(self.length):
            x = torch.cat([start, self.token(codes)], dim=1) + self.position[:, :t + 1] + start
            h = self.blocks(x, mask=self.mask[:t + 1, :t + 1], is_causal=True)
            logits = self.head(self.norm(h[:, -1])).float() / temperature
            if top_k is not None and top_k < self.num_codes:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = logits.softmax(-1)
            where = generator.device if generator is not None else device
            nxt = torch.multinomial(probs.to(where), 1, generator=generator).to(device)
            codes = torch.cat([codes, nxt], dim=1)
        self.train(was_training)
        return codes


@torch.enable_grad()  # trains even when called under torch.no_grad() (e.g. from an evaluation)
def fit_code_prior(prior: CodePrior, codes: Tensor, labels: Tensor | None = None, epochs: int = 10,
                   batch_size: int = 128, lr: float = 1e-3, seed: int = 0, max_seconds: float | None = None,
                   progress: bool = False) -> list[float]:
    """Train ``prior`` on code grids ``codes`` (``[N, length]`` or ``[N, h, w]`` int64) and return per-epoch NLL.

    Adam with a cosine-decayed learning rate; everything stays on the prior's device.
    """
    device = prior.position.device
    codes = codes.reshape(len(codes), -1).long().to(device)
    if codes.shape[1] != prior.length:
        raise KitError(f"codes have {codes.shape[1]} positions, the prior expects {prior.length}")
    if prior.num_classes and labels is None:
        raise KitError("this prior is class-conditional: pass the labels of the coded images")
    labels = labels.long().to(device) if labels is not None else None
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=0.01)
    steps_per_epoch = max(1, math.ceil(len(codes) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    from tqdm.auto import tqdm

    history: list[float] = []
    t0 = time.perf_counter()
    prior.train()
    bar = tqdm(range(epochs), desc="code prior", unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(codes), generator=gen).to(device)
        total, seen = 0.0, 0
        for i in range(0, len(codes), batch_size):
            idx = order[i:i + batch_size]
            loss = prior.loss(codes[idx], labels[idx] if labels is not None else None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                break
        history.append(total / max(seen, 1))
        bar.set_postfix(nll=f"{history[-1]:.3f}")
        if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
            break
    prior.eval()
    return history
