"""The label critic: a small classifier, trained next to a CVAE, that checks whether the decoder obeys its label.

Why a CVAE needs one.  The ELBO lets the code z skip what the label already says, but it does not forbid z to say it
again.  With a small KL weight (the sharp reconstructions of the kit's default) writing the class into z costs a few
nats, so the encoder does, and the decoder learns to read the class from z and ignore its label: encode a shirt,
decode it as "sneaker", and out comes a shirt.  The label-swap term asks for the behaviour the lesson promises
instead of hoping for it: decode training codes once more with a *random other* label (the CVAE's ``swap_fraction``
of each batch), and ask this critic whether the result shows that label.  Only the decoder (and encoder) learn from
that answer; the critic itself learns from real training images alone, so it can only be pleased by images that look
like the asked class.  This is the auxiliary-classifier idea of AC-GAN (Odena et al. 2017,
https://arxiv.org/abs/1610.09585) and CVAE-GAN (Bao et al. 2017, https://arxiv.org/abs/1703.10155: a classifier
trained on real images whose loss is applied to the generator's images).  With ``realism`` the critic also gets
AC-GAN's second question, "did the decoder make this?", so that only swaps that pass as real members of the asked
class please it; the reconstruction term keeps the images sharp.

One detail makes the critic hard to fool with faint, critic-specific patterns instead of a real change of class:
each step shows the critic's real and swapped inputs through the same random shift and pixel noise, so only changes
that survive a shift and noise count (expectation over transformations, Athalye et al. 2018,
https://arxiv.org/abs/1707.07397).  Measured on Fashion-MNIST (10 epochs, beta 0.02, weight 30, 2-core CPU): without
them the critic saw the new class in ~100 % of swapped images and an independent judge in 76 %; with a 2-pixel shift
and noise 0.1 the judge saw it in 94 %, with noise 0.2 in 96 %.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


class LabelCritic(nn.Module):
    """Two stride-2 convolutions and a linear layer: image ``[B, C, H, W]`` in [0, 1] -> class logits.

    Small on purpose: it only has to tell the classes apart well enough to say "this is not a sneaker yet", and it
    runs on real, swapped and reconstructed images at every training step.

    Args:
        shift: largest random shift (pixels) applied to the critic's inputs while training (0 = none).
        noise: standard deviation of Gaussian pixel noise added to the critic's inputs while training.
        realism: give the critic one more class, "made by the decoder": it learns to put swapped decodes there
            (and reconstructions under their own class, so blur alone is no sign of a swap), and the swap term then
            asks for images that pass as *real* members of the asked class (the auxiliary-classifier GAN's
            discriminator, Odena et al. 2017), not just images that tip a classifier.
    """

    def __init__(self, channels: int, num_classes: int, size: tuple[int, int], width: int = 16, shift: int = 2,
                 noise: float = 0.2, realism: bool = False) -> None:
        super().__init__()
        h, w = size
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(), nn.Flatten(),
            nn.Linear(2 * width * ((h + 3) // 4) * ((w + 3) // 4), num_classes + int(realism)))
        self.shift, self.noise, self.realism, self.num_classes = shift, noise, realism, num_classes

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _views(self, *images: Tensor) -> list[Tensor]:
        """The critic's training views of ``images`` (same shape each): one random shift and one draw of pixel noise
        per step, shared by all of them, so neither can tell real images from decoded ones."""
        if not self.training or (not self.shift and not self.noise):
            return list(images)
        s = self.shift
        shifts = tuple(int(v) for v in torch.randint(-s, s + 1, (2,))) if s else (0, 0)
        noise = self.noise * torch.randn_like(images[0]) if self.noise else None
        out = []
        for x in images:
            x = torch.roll(x, shifts, (2, 3)) if any(shifts) else x
            out.append(x + noise if noise is not None else x)
        return out

    def terms(self, real: Tensor, labels: Tensor, decoded: Tensor, asked: Tensor,
              recon: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(critic, swap)``: the critic's cross-entropy on real images (trains the critic only) and its
        cross-entropy for ``decoded`` images against the labels they were ``asked`` to show (trains the model only:
        the critic's weights are detached for it, the gradient flows into the images).  With ``realism`` the critic
        term also files ``decoded`` under the extra class and the reconstructions ``recon`` under ``labels``."""
        views = self._views(real.detach(), decoded, *([] if recon is None else [recon.detach()]))
        n = len(real)
        if self.realism:  # one pass for everything that trains the critic: real, decoded (as "made"), reconstructed
            seen = [views[0], views[1].detach()] + views[2:]
            targets = [labels, torch.full_like(asked, self.num_classes)] + ([labels] if recon is not None else [])
            critic = F.cross_entropy(self(torch.cat(seen)).float(), torch.cat(targets), reduction="none")
            critic = critic.view(len(seen), n).mean(1).sum()
        else:
            critic = F.cross_entropy(self(views[0]).float(), labels)
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        swap = F.cross_entropy(functional_call(self, frozen, (views[1],)).float(), asked)
        return critic, swap
