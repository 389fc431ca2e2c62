"""cvaelib.teach: check functions accept right answers and reject wrong ones with the intended message; student
versions stop exactly at the exercises (and the instructor solutions pass), executed cell by cell in SMOKE mode;
answer key, nbgrader metadata, grading and badges."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cvaelib.errors import KitError
from cvaelib.teach import (ExerciseError, check_class_samples, check_clip_score, check_condition_concat,
                           check_dz_dlogvar, check_encode_at, check_frechet_distance, check_guidance_loss,
                           check_guided_result, check_kl, check_label_swap, check_latent_knn, check_long_caption,
                           check_mc_kl, check_nearest_code, check_obedience_loss, check_perplexity,
                           check_perturb_condition, check_prompt_rule, check_recon_loss, check_reconstruct,
                           check_redecode, check_reparameterize, check_restart_dead_codes, check_similarity_matrix,
                           check_slerp, check_source_beta, check_straight_through, check_value, check_vq_losses)
from cvaelib.teach import check_clip_loss, check_contrastive_ranking, check_shift_bridge, check_weighted_loss
from cvaelib.teach import config
from cvaelib.teach.checks._core import QUESTIONS
from cvaelib.teach.badges import rewrite_text
from cvaelib.teach.cli import main
from cvaelib.teach.runner import grade, verify
from cvaelib.teach.exercises import (BEGIN, END, answer_key, find_exercises, read_notebook, stub_source, to_nbgrader,
                                     to_student, write_pair)

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


# --- right answers (written the way a student would) ---------------------------------------------------------------
def _rule(text):
    t = " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())
    return re.search(r"\bshirts?\b", re.sub(r"\bt shirts?\b", " ", t)) is not None


def _slerp(z0, z1, steps):
    t = torch.linspace(0, 1, steps)[:, None]
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.acos((u0 * u1).sum().clamp(-1, 1))
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * ((1 - t) * n0 + t * n1)


def _frechet(m1, s1, m2, s2, sqrt=None):
    import numpy as np
    import scipy.linalg

    root = scipy.linalg.sqrtm(s1 @ s2).real if sqrt is None else sqrt(s1, s2)
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * root))


def _perplexity(counts):
    p = counts.float() / counts.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _rep(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def _mc_kl(mu, logvar, n, entropy=True, sign=1.0):
    """A student's Monte-Carlo KL for one dimension (the switches make the typical mistakes)."""
    z = _rep(mu.expand(n), logvar.expand(n))
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())
    log_p = -0.5 * (math.log(2 * math.pi) + z ** 2)
    return sign * ((log_q if entropy else 0.0) - log_p).mean()


def _obey(m, critic, z, c, new=None, freeze=True, squash=True, target_new=True):
    """A student's obedience term (the switches make the typical mistakes)."""
    from torch.func import functional_call

    k = m.num_classes
    new_c = (c + torch.randint(1, k, c.shape)) % k if new is None else new(c, k)
    out = m.decode(z, new_c)
    images = torch.sigmoid(out) if squash else out
    logits = functional_call(critic, {n: p.detach() for n, p in critic.named_parameters()}, (images,)) \
        if freeze else critic(images)
    return F.cross_entropy(logits, new_c if target_new else c)


def _class_samples(m, label, n, g):
    device = next(m.parameters()).device
    z = torch.randn(n, m.latent_dim, generator=g).to(device)
    return torch.sigmoid(m.decode(z, torch.full((n,), label, device=device)))


def _clip_loss(t, i, tau, directions=(0, 1), reduce=0.5):
    logits = F.normalize(t, dim=-1) @ F.normalize(i, dim=-1).T / tau
    labels = torch.arange(len(t))
    terms = [F.cross_entropy(logits if d == 0 else logits.T, labels) for d in directions]
    return reduce * sum(terms) if len(terms) == 2 else terms[0]


def _contrastive(bank, text, refs, scale, dim=1, log=True):
    logits = scale * torch.cat([(bank @ text)[:, None], bank @ refs.T], dim=1)
    return (torch.log_softmax if log else torch.softmax)(logits, dim=dim)[:, 0]


def _angle_loss(f, t, w, square=True, views="mean"):
    angle = torch.arccos((f @ t.T).clamp(-1, 1))
    d = 0.5 * angle ** 2 if square else angle
    return ((d.mean(0) if views == "mean" else d.sum(0)) * w).sum()


def _shared_noise(c, xi):
    eps = F.normalize(torch.randn(1, c.shape[1]), dim=-1)
    return F.normalize(c + xi * c.norm(dim=-1, keepdim=True) * eps, dim=-1)


RIGHT = [
    (check_recon_loss, lambda logits, x: F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)),
    (check_reconstruct, lambda m, x: torch.sigmoid(m.decode(m.encode(x)[0]))),
    (check_reconstruct, lambda m, x: torch.sigmoid(m.decode(m.embed(x)))),
    (check_reparameterize, _rep),
    (check_dz_dlogvar, lambda mu, lv, eps: 0.5 * torch.exp(0.5 * lv) * eps),
    (check_dz_dlogvar, lambda mu, lv, eps: 0.5 * (_rep(mu, lv) * 0 + mu + torch.exp(0.5 * lv) * eps - mu)),
    (check_kl, lambda mu, lv: -0.5 * torch.sum(1 + lv - mu ** 2 - lv.exp(), dim=1).mean()),
    (check_mc_kl, _mc_kl),
    (check_mc_kl, lambda mu, lv, n: torch.distributions.Normal(mu, (0.5 * lv).exp()).log_prob(
        z := _rep(mu.expand(n), lv.expand(n))).sub(torch.distributions.Normal(0.0, 1.0).log_prob(z)).mean().item()),
    (check_condition_concat, lambda z, c, k: torch.cat([z, F.one_hot(c, k).float()], dim=1)),
    (check_condition_concat, lambda z, c, k: torch.cat([z, F.one_hot(c, k).to(z.dtype)], dim=1)),
    (check_condition_concat, lambda z, c, k: torch.cat([z, torch.eye(k)[c]], dim=1)),
    (check_class_samples, _class_samples),
    (check_label_swap, lambda m, x, c, c2: torch.sigmoid(m.decode(m.encode(x, c)[0], c2))),
    (check_obedience_loss, _obey),
    (check_slerp, _slerp),
    (check_prompt_rule, _rule),
    (check_similarity_matrix, lambda t, i: F.normalize(t, dim=-1) @ F.normalize(i, dim=-1).T),
    (check_perturb_condition, lambda c, xi: F.normalize(
        c + xi * c.norm(dim=-1, keepdim=True) * F.normalize(torch.randn_like(c), dim=-1), dim=-1)),
    (check_clip_score, lambda i, t: (F.normalize(i, dim=-1) * F.normalize(t, dim=-1)).sum(-1).mean()),
    (check_frechet_distance, _frechet),
    (check_guidance_loss, lambda f, t, tau: F.cross_entropy(f @ t.T / tau, torch.zeros(len(f), dtype=torch.long))),
    (check_guidance_loss, lambda f, t, tau: -torch.log_softmax(f @ t.T / tau, dim=1)[:, 0].mean()),
    (check_weighted_loss, _angle_loss),
    (check_clip_loss, _clip_loss),
    (check_perturb_condition, lambda c, xi: F.normalize(  # LAFITE on the unit vector: the same geometry
        F.normalize(c, dim=-1) + xi * F.normalize(torch.randn_like(c), dim=-1), dim=-1)),
    (check_shift_bridge, lambda t, mi, mt: F.normalize(t + mi - mt, dim=-1)),
    (check_contrastive_ranking, _contrastive),
    (check_perplexity, _perplexity),
    (check_nearest_code, lambda z, book: torch.cdist(z, book).argmin(1)),
]


# --- lessons 06, 07 and 09: right answers -----------------------------------------------------------------------------
def _encode_at(model, x, c, point, shift=0, before=False):
    h = x
    for i, block in enumerate(model.down, start=1):
        if before and i == point:
            h = h + model.cond_in(c)[:, :, None, None]
        h = block(h)
        if not before and i == point + shift:
            h = h + model.cond_in(c)[:, :, None, None]
    return model.mu(h).flatten(1), model.logvar(h).flatten(1)


def _redecode(model, x, c_image, c_new, encode_with=None, sample=False, logits=False):
    from cvaelib.losses import reparameterize

    mu, logvar = model.encode(x, c_image if encode_with is None else encode_with)
    out = model.decode(reparameterize(mu, logvar) if sample else mu, c_new)
    return out if logits else torch.sigmoid(out)


def _sentences(text):
    from cvaelib.clip.text import split_sentences

    return split_sentences(text)


def _long_caption(encoder, text, normalise=True, sentences=_sentences):
    mean = encoder.encode_text(sentences(text)).mean(0)
    return F.normalize(mean, dim=-1) if normalise else mean


def _vq_losses(z_e, z_q, detach=("e", "q"), reduce=lambda t, b: t.sum() / b):
    b = z_e.shape[0]
    e, q = z_e.detach() if "e" in detach[0] else z_e, z_q.detach() if "q" in detach[0] else z_q
    codebook = reduce((e - q).pow(2), b)
    e, q = z_e.detach() if "e" in detach[1] else z_e, z_q.detach() if "q" in detach[1] else z_q
    return codebook, reduce((e - q).pow(2), b)


def _restart(codebook, counts, z, generator, mask=lambda c: c == 0, values=None):
    codebook = codebook.clone()
    dead = mask(counts).nonzero().flatten()
    codebook[dead] = z[torch.randperm(len(z), generator=generator)[:len(dead)]] if values is None else values(len(dead))
    return codebook


RIGHT += [
    (check_source_beta, lambda w, shape, d: w * shape[0] * shape[1] * shape[2] / d),
    (check_encode_at, _encode_at),
    (check_redecode, _redecode),
    (check_long_caption, _long_caption),
    (check_straight_through, lambda z_e, z_q: z_e + (z_q - z_e).detach()),
    (check_vq_losses, _vq_losses),
    (check_restart_dead_codes, _restart),
]

@pytest.mark.parametrize("check,answer", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_check_accepts_a_right_answer(check, answer, capsys):
    check(answer)
    assert capsys.readouterr().out.startswith(f"correct: {check.__name__}:")


# --- wrong answers: the mistakes students make, and what the message must say ---------------------------------------
WRONG = [
    (check_recon_loss, lambda l, x: F.binary_cross_entropy_with_logits(l, x), "averaged over the pixels"),
    (check_recon_loss, lambda l, x: F.binary_cross_entropy_with_logits(l, x, reduction="sum"), "whole batch"),
    (check_recon_loss, lambda l, x: F.binary_cross_entropy_with_logits(torch.sigmoid(l), x, reduction="sum") / len(x),
     "sigmoid twice"),
    (check_recon_loss, lambda l, x: F.mse_loss(torch.sigmoid(l), x, reduction="sum") / len(x), "squared error"),
    (check_reconstruct, lambda m, x: m.decode(m.encode(x)[0]), "logits, not pixel intensities"),
    (check_reconstruct, lambda m, x: m.reconstruct(x), "calls model.reconstruct"),
    (check_reconstruct, lambda m, x: torch.sigmoid(m(x)), "its forward"),
    (check_reconstruct, lambda m, x: x.clone(), "never calls model.encode and decode"),
    (check_reconstruct, lambda m, x: torch.sigmoid(m.decode(m.encode(x)[0] * 0)), "differ from the model"),
    (check_reparameterize, lambda mu, lv: mu + lv.exp() * torch.randn_like(mu), "variance"),
    (check_reparameterize, lambda mu, lv: mu + torch.randn_like(mu), "not scaled by sigma"),
    (check_reparameterize, lambda mu, lv: mu + torch.exp(0.5 * lv), "no noise"),
    (check_reparameterize, lambda mu, lv: (mu + torch.exp(0.5 * lv) * torch.randn_like(mu)).detach(), "no gradient"),
    (check_reparameterize, lambda mu, lv: mu + torch.exp(0.5 * lv) * torch.rand_like(mu), "mean 0"),
    (check_reparameterize, lambda mu, lv: torch.normal(mu, torch.exp(0.5 * lv)), "torch.normal"),
    (check_dz_dlogvar, lambda mu, lv, eps: eps, "dz/dsigma"),
    (check_dz_dlogvar, lambda mu, lv, eps: torch.exp(0.5 * lv) * eps, "inner derivative is missing"),
    (check_dz_dlogvar, lambda mu, lv, eps: 0.5 * eps, "does not grow with sigma"),
    (check_dz_dlogvar, lambda mu, lv, eps: 0.5 * lv.exp() * eps, "used the variance"),
    (check_dz_dlogvar, lambda mu, lv, eps: torch.ones_like(mu), "that is dz/dmu"),
    (check_dz_dlogvar, lambda mu, lv, eps: 0.5 * (mu + torch.exp(0.5 * lv) * eps), "changes when mu changes"),
    (check_kl, lambda mu, lv: -0.5 * torch.sum(mu ** 2 + lv.exp() - 1 - lv) / len(mu), "never negative"),
    (check_kl, lambda mu, lv: torch.sum(mu ** 2 + lv.exp() - 1 - lv) / len(mu), "twice the right value"),
    (check_kl, lambda mu, lv: 0.5 * torch.sum(mu ** 2 + lv.exp() - 1 - lv), "summed over the batch"),
    (check_kl, lambda mu, lv: 0.5 * torch.mean(mu ** 2 + lv.exp() - 1 - lv), "averaged over the latent"),
    (check_kl, lambda mu, lv: 0.5 * torch.sum(mu ** 2 + lv - 1 - lv) / len(mu), "not 0"),
    (check_kl, lambda mu, lv: 0.5 * torch.sum(mu ** 2 + lv.exp() - 1 - lv + mu.abs()) / len(mu), "by hand"),
    (check_mc_kl, lambda mu, lv, n: 0.5 * (mu ** 2 + lv.exp() - 1 - lv), "not sampled"),
    (check_mc_kl, lambda mu, lv, n: _mc_kl(mu, lv, n, sign=-1.0), "never negative"),
    (check_mc_kl, lambda mu, lv, n: _mc_kl(mu, lv, n, entropy=False), "the one of q at z is missing"),
    (check_mc_kl, lambda mu, lv, n: (lambda z: (-0.5 * lv - 0.5 * (z - mu) ** 2 / (0.5 * lv).exp() + 0.5 * z ** 2)
                                     .mean())(_rep(mu.expand(n), lv.expand(n))), "*variance* exp(logvar)"),
    (check_mc_kl, lambda mu, lv, n: (lambda z: (-0.5 * lv - 0.5 * (z - mu) ** 2 / lv.exp() + 0.5 * z ** 2).mean())(
        mu + lv.exp() * torch.randn(n)), "*variance* exp(logvar)"),
    (check_condition_concat, lambda z, c, k: torch.cat([z, c[:, None].float()], 1), "class id as one number"),
    (check_condition_concat, lambda z, c, k: torch.cat([F.one_hot(c, k).float(), z], 1), "z first"),
    (check_condition_concat, lambda z, c, k: torch.cat([z.long(), F.one_hot(c, k)], 1), "float"),
    (check_condition_concat, lambda z, c, k: torch.cat([z, F.one_hot(c, k)], 1), "int64 tensor"),
    (check_condition_concat, lambda z, c, k: torch.cat([z, F.one_hot(c, k)], 1).float(), "int64 tensor"),
    (check_condition_concat, lambda z, c, k: torch.cat([z, F.one_hot((c + 1) % k, k).float()], 1),
     "does not reproduce"),
    (check_class_samples, lambda m, label, n, g: torch.sigmoid(
        m.decode(torch.randn(n, m.latent_dim), torch.full((n,), label))), "generator"),
    (check_class_samples, lambda m, label, n, g: torch.sigmoid(
        m.decode(torch.randn(n, m.latent_dim, generator=g), torch.zeros(n, dtype=torch.long))), "class 0, not 3"),
    (check_class_samples, lambda m, label, n, g: m.decode(
        torch.randn(n, m.latent_dim, generator=g), torch.full((n,), label)), "not in [0, 1]"),
    (check_class_samples, lambda m, label, n, g: m.sample(n, torch.full((n,), label), generator=g),
     "called model.sample"),
    (check_class_samples, lambda m, label, n, g: torch.sigmoid(
        m.decode(torch.rand(n, m.latent_dim, generator=g), torch.full((n,), label))), "differ from decoding"),
    (check_label_swap, lambda m, x, c, c2: m.decode(m.encode(x, c)[0], c2), "logits"),
    (check_label_swap, lambda m, x, c, c2: m.reconstruct(x, c), "own classes"),
    (check_label_swap, lambda m, x, c, c2: m.reconstruct(x, c2), "encoded the images with the *new* class"),
    (check_label_swap, lambda m, x, c, c2: torch.sigmoid(m.decode(_rep(*m.encode(x, c)), c2)), "random sample"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, new=lambda c, k: c), "its own class"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, new=lambda c, k: torch.randint(0, k, c.shape)),
     "new labels equal the old ones"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, new=lambda c, k: (c + 1) % k), "the same few"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, freeze=False), "critic's weights get a gradient"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, squash=False), "logits"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z, c, target_new=False), "*old* classes"),
    (check_obedience_loss, lambda m, cr, z, c: _obey(m, cr, z.detach(), c).detach(), "no gradient flows"),
    (check_obedience_loss, lambda m, cr, z, c: F.cross_entropy(cr(z.new_zeros(len(z), 1, 28, 28)), c),
     "never calls model.decode"),
    (check_slerp, lambda a, b, s: torch.stack([(1 - t) * a + t * b for t in torch.linspace(0, 1, s)]),
     "straight line"),
    (check_slerp, lambda a, b, s: torch.stack([(1 - t) * a + t * b for t in torch.linspace(0.1, 1, s)]), "start at z0"),
    (check_slerp, lambda a, b, s: F.normalize(_slerp(a, b, s), dim=-1), "lengths"),
    (check_prompt_rule, lambda t: "shirt" in t.lower(), "T-shirt"),
    (check_prompt_rule, lambda t: re.search(r"shirts?", _strip_t(t.lower())) is not None, "whole words"),
    (check_prompt_rule, lambda t: re.search(r"\bshirts?\b", _strip_t(t)) is not None, "normalise the case"),
    (check_similarity_matrix, lambda t, i: t @ i.T, "normalise every row"),
    (check_similarity_matrix, lambda t, i: F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T, "rows should be texts"),
    (check_similarity_matrix, lambda t, i: F.normalize(t, dim=0) @ F.normalize(i, dim=0).T, "wrong dimension"),
    (check_perturb_condition, lambda c, xi: c + xi * torch.randn_like(c), "length 1"),
    (check_perturb_condition, lambda c, xi: F.normalize(c + xi * torch.randn_like(c), dim=-1), "length of c"),
    (check_perturb_condition, lambda c, xi: F.normalize(c + xi * c.norm(dim=-1, keepdim=True) * torch.randn_like(c),
                                                        dim=-1), "xi * |c| exactly"),
    (check_perturb_condition, lambda c, xi: F.normalize(c, dim=-1), "no noise"),
    (check_perturb_condition, lambda c, xi: F.normalize(c + xi * F.normalize(torch.randn_like(c), dim=-1), dim=-1),
     "must not depend on the length"),
    (check_perturb_condition, _shared_noise, "same noise vector"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, tau, directions=(0,)), "only one direction"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, tau, directions=(1,)), "only one direction"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, tau, reduce=1.0), "averages them"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, 1.0), "temperature is missing"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, 1 / tau), "multiplied by tau"),
    (check_clip_loss, lambda t, i, tau: F.cross_entropy(t @ i.T / tau, torch.arange(len(t))) / 2
     + F.cross_entropy(i @ t.T / tau, torch.arange(len(t))) / 2, "unnormalised"),
    (check_clip_loss, lambda t, i, tau: _clip_loss(t, i, tau).detach(), "no gradient"),
    (check_shift_bridge, lambda t, mi, mt: F.normalize(t - mi + mt, dim=-1), "wrong way"),
    (check_shift_bridge, lambda t, mi, mt: t + mi - mt, "unit length"),
    (check_shift_bridge, lambda t, mi, mt: F.normalize(t + F.normalize(mi, dim=-1) - F.normalize(mt, dim=-1), dim=-1),
     "normalised the two centres"),
    (check_contrastive_ranking, lambda b, t, r, s: b @ t, "plain cosine"),
    (check_contrastive_ranking, lambda b, t, r, s: _contrastive(b, t, r, s, log=False), "probabilities"),
    (check_contrastive_ranking, lambda b, t, r, s: _contrastive(b, t, r, 1.0), "scale"),
    (check_contrastive_ranking, lambda b, t, r, s: _contrastive(b, t, r, s, dim=0), "over the bank"),
    (check_clip_score, lambda i, t: (i * t).sum(-1).mean(), "unnormalised"),
    (check_clip_score, lambda i, t: (F.normalize(i, dim=-1) @ F.normalize(t, dim=-1).T).mean(), "whole similarity"),
    (check_frechet_distance, lambda m1, s1, m2, s2: float(((m1 - m2) ** 2).sum()), "only have the mean term"),
    (check_frechet_distance, lambda *a: _frechet(*a, sqrt=lambda s1, s2: (s1 * s2).clip(0) ** 0.5),
     "root of each entry"),
    (check_frechet_distance, lambda *a: _frechet(*a) - float(((a[0] - a[2]) ** 2).sum())
     + float(((a[0] - a[2]) ** 2).sum()) ** 0.5, "squared"),
    (check_guidance_loss, lambda f, t, tau: -(f @ t[0]).mean(), "negatives play no part"),
    (check_guidance_loss, lambda f, t, tau: torch.log_softmax(f @ t.T / tau, dim=1)[:, 0].mean(), "wrong sign"),
    (check_guidance_loss, lambda f, t, tau: F.cross_entropy(f @ t.T, torch.zeros(len(f), dtype=torch.long)),
     "temperature is missing"),
    (check_guidance_loss, lambda f, t, tau: F.cross_entropy(f @ t.T * tau, torch.zeros(len(f), dtype=torch.long)),
     "multiplied by tau"),
    (check_guidance_loss, lambda f, t, tau: -torch.log_softmax(f @ t.T / tau, dim=0)[:, 0].mean(), "over the views"),
    (check_guidance_loss, lambda f, t, tau: F.cross_entropy(f @ t.T / tau, torch.zeros(len(f), dtype=torch.long),
                                                            reduction="sum"), "summed over the views"),
    (check_guidance_loss, lambda f, t, tau: -torch.softmax(f @ t.T / tau, dim=1)[:, 0].mean(), "not minus its log"),
    (check_guidance_loss, lambda f, t, tau: F.cross_entropy((f @ t.T / tau).detach(),
                                                            torch.zeros(len(f), dtype=torch.long)), "no gradient"),
    (check_weighted_loss, lambda f, t, w: _angle_loss(f, t, w.abs()), "keep its sign"),
    (check_weighted_loss, lambda f, t, w: -_angle_loss(f, t, w), "wrong sign"),
    (check_weighted_loss, lambda f, t, w: -((f @ t.T).mean(0) * w).sum(), "minus the cosines"),
    (check_weighted_loss, lambda f, t, w: _angle_loss(f, t, w, square=False), "half its square"),
    (check_weighted_loss, lambda f, t, w: _angle_loss(f, t, w, views="sum"), "summed over the views"),
    (check_perplexity, lambda c: float(torch.exp(-((c / c.sum()) * (c / c.sum()).log()).sum())), "keep only p > 0"),
    (check_perplexity, lambda c: float(torch.log(torch.tensor(_perplexity(c)))), "returned the entropy"),
    (check_nearest_code, lambda z, book: torch.cdist(z, book).argmax(1), "farthest"),
    (check_nearest_code, lambda z, book: (z @ book.T).argmax(1), "dot product"),
    (check_nearest_code, lambda z, book: torch.cdist(z, book), "distance matrix"),
]


# --- lessons 06, 07 and 09: wrong answers ----------------------------------------------------------------------------
WRONG += [
    (check_source_beta, lambda w, shape, d: w, "unchanged"),
    (check_source_beta, lambda w, shape, d: w * d / (shape[0] * shape[1] * shape[2]), "upside down"),
    (check_source_beta, lambda w, shape, d: w * shape[1] * shape[2] / d, "colour channels"),
    (check_source_beta, lambda w, shape, d: 0.96, "expected 0.24"),
    (check_encode_at, lambda m, x, c, p: m.encode(x, c), "calls model.encode"),
    (check_encode_at, lambda m, x, c, p: _encode_at(m, x, c, p, shift=1), "shape did not fit"),
    (check_encode_at, lambda m, x, c, p: _encode_at(m, x, c, p, before=True), "shape did not fit"),
    (check_encode_at, lambda m, x, c, p: _encode_at(m, x, c, 3), "point=4 a shape did not fit"),
    (check_encode_at, lambda m, x, c, p: _encode_at(m, x, c, 99), "never adds the condition"),
    (check_encode_at, lambda m, x, c, p: _encode_at(m, x, c, p)[::-1], "swapped"),
    (check_encode_at, lambda m, x, c, p: tuple(t[:, :, None, None] for t in _encode_at(m, x, c, p)), "flat"),
    (check_redecode, lambda m, x, ci, cn: _redecode(m, x, ci, cn, logits=True), "logits"),
    (check_redecode, lambda m, x, ci, cn: _redecode(m, x, ci, ci), "reconstruction"),
    (check_redecode, lambda m, x, ci, cn: _redecode(m, x, ci, cn, encode_with=cn), "encoded the faces with the new"),
    (check_redecode, lambda m, x, ci, cn: _redecode(m, x, ci, cn, sample=True), "z was sampled"),
    (check_long_caption, lambda e, t: e.encode_text(t, long_text="average")[0], "library's version"),
    (check_long_caption, lambda e, t: _long_caption(e, t, normalise=False), "shorter"),
    (check_long_caption, lambda e, t: e.encode_text(t)[0], "one pass"),
    (check_long_caption, lambda e, t: _long_caption(e, t, sentences=lambda s: _sentences(s)[:1]), "first sentence"),
    (check_long_caption, lambda e, t: _long_caption(e, t, sentences=lambda s: [p.strip() for p in s.split(".")
                                                                               if p.strip()]), "Mr. Brown"),
    (check_straight_through, lambda z_e, z_q: z_q, "no gradient reaches z_e"),
    (check_straight_through, lambda z_e, z_q: z_e, "encoder's values"),
    (check_straight_through, lambda z_e, z_q: z_q + (z_e - z_q).detach(), "encoder's values"),
    (check_straight_through, lambda z_e, z_q: z_e + (z_q - z_e), "no gradient reaches z_e"),
    (check_straight_through, lambda z_e, z_q: 2 * z_e + (z_q - 2 * z_e).detach(), "scaled"),
    (check_vq_losses, lambda z_e, z_q: _vq_losses(z_e, z_q)[::-1], "swapped"),
    (check_vq_losses, lambda z_e, z_q: _vq_losses(z_e, z_q, detach=("", "")), "stop-gradient is missing"),
    (check_vq_losses, lambda z_e, z_q: _vq_losses(z_e, z_q, reduce=lambda t, b: t.mean()), "averaged over every"),
    (check_vq_losses, lambda z_e, z_q: _vq_losses(z_e, z_q, reduce=lambda t, b: t.sum()), "summed over the batch"),
    (check_vq_losses, lambda z_e, z_q: _vq_losses(z_e, z_q, detach=("eq", "eq")), "no gradient anywhere"),
    (check_restart_dead_codes, lambda b, c, z, g: _restart(b, c, z, g, mask=lambda c: c > 0), "in use changed"),
    (check_restart_dead_codes, lambda b, c, z, g: _restart(b, c, z, g, mask=lambda c: c >= 0), "in use changed"),
    (check_restart_dead_codes, lambda b, c, z, g: _restart(b, c, z, g, values=lambda n: torch.randn(n, z.shape[1])),
     "not one of the encoder outputs"),
    (check_restart_dead_codes, lambda b, c, z, g: _restart(b, c, z, g, values=lambda n: z[:1].expand(n, -1)),
     "same vector"),
    (check_restart_dead_codes, lambda b, c, z, g: b.clone(), "not replaced"),
]


def _strip_t(text):
    return re.sub(r"\bt[- ]shirts?\b", " ", text, flags=re.IGNORECASE)


@pytest.mark.parametrize("check,answer,says", WRONG, ids=[f"{c.__name__}-{s}" for c, _, s in WRONG])
def test_check_rejects_a_wrong_answer_with_the_intended_message(check, answer, says):
    with pytest.raises(ExerciseError) as err:
        check(answer)
    message = str(err.value)
    assert says.lower() in message.lower(), message
    assert message.startswith(f"{check.__name__}: ") and "Hint:" in message and "\n" not in message
    assert isinstance(err.value, KitError)


def test_unfinished_stub_passes_through_and_crashes_are_explained():
    def stub(*_):
        raise NotImplementedError("Exercise 2: Write the KL term")

    with pytest.raises(NotImplementedError, match="Exercise 2: Write the KL term"):
        check_kl(stub)
    with pytest.raises(ExerciseError, match=r"raised IndexError.*called it with a float32 tensor of shape \[2, 3\], "
                                             r"a float32 tensor of shape \[2, 3\]\)\. Hint: call your function yourself"):
        check_kl(lambda mu, lv: mu[99])
    with pytest.raises(ExerciseError, match=r"without calling it"):
        check_kl(torch.tensor(1.0))
    with pytest.raises(ExerciseError, match=r"should be one number per batch"):
        check_kl(lambda mu, lv: 0.5 * (mu ** 2 + lv.exp() - 1 - lv).sum(1))
    check_value(0.4, 0, 1, "knn")
    with pytest.raises(ExerciseError, match="expected the GuidedResult"):
        check_guided_result(torch.zeros(3), reference=None)
    with pytest.raises(ExerciseError, match=r"knn = 40 is outside"):
        check_value(40, 0, 1, "knn")


def test_check_guided_result_wants_the_same_run_with_one_view(data_root, capsys):
    """Lesson 08, exercise 1: only n_augment=1 with everything else as in the run above passes."""
    import dataclasses

    from cvaelib.guided import optimise_latent
    from tiny_models import tiny_clip

    tiny = tiny_clip(data_root)

    def pixels(z):
        return torch.sigmoid(z.view(-1, 1, 28, 28))

    z0 = torch.zeros(2, 784)
    negatives = ["a handwritten one", "a handwritten two"]
    run = dict(steps=3, lr=0.1, prior_weight=0.0, negatives=negatives, n_frames=0)
    with_aug = optimise_latent(pixels, tiny, "a handwritten seven", z0, n_augment=4, **run)
    right = optimise_latent(pixels, tiny, "a handwritten seven", z0, n_augment=1, **run)
    check_guided_result(right, with_aug, pixels)
    assert capsys.readouterr().out.startswith("correct: check_guided_result:")
    wrong = {
        "n_augment=4": with_aug,
        "run above itself": with_aug,
        "prompt": optimise_latent(pixels, tiny, "a handwritten one", z0, n_augment=1, **run),
        "negative prompts": optimise_latent(pixels, tiny, "a handwritten seven", z0, n_augment=1,
                                            **{**run, "negatives": None}),
        "records no settings": dataclasses.replace(right, images=torch.zeros_like(right.images), settings={}),
        "not what the result's latents decode to": dataclasses.replace(right, images=torch.zeros_like(right.images)),
    }
    for says, result in wrong.items():
        with pytest.raises(ExerciseError, match=says):
            check_guided_result(result, with_aug if says != "n_augment=4" else optimise_latent(
                pixels, tiny, "a handwritten seven", z0, n_augment=1, **run), pixels)


def test_latent_knn_check_wants_the_measurement_of_a_trained_model_with_the_asked_beta(data_root, capsys):
    """check_latent_knn recomputes the k-NN accuracy: a constant, another model's number, the wrong beta or an
    untrained model do not pass."""
    import cvaelib
    from cvaelib.viz import latent

    data = cvaelib.subset(cvaelib.load_dataset("fashion-mnist", data_root, "train"), 1200, seed=0)
    test = cvaelib.subset(cvaelib.load_dataset("fashion-mnist", data_root, "test"), 300, seed=0)
    x, y = test.float_images(), test.labels
    strong = cvaelib.ConditionalVAE(image_shape=data.shape, num_classes=10, latent_dim=8, beta=4.0, prior="standard")
    cvaelib.fit(strong, data, epochs=1, progress=False)
    knn = latent.knn_accuracy(latent.latents(strong, x, y), y)
    check_latent_knn(knn, strong, x, y, beta=4.0)
    assert capsys.readouterr().out.startswith("correct: check_latent_knn:")
    for value, model, says in [(0.5 if abs(knn - 0.5) > 0.01 else 0.6, strong, "give"), (knn * 100, strong, "fraction"),
                               ("high", strong, "should be a number")]:
        with pytest.raises(ExerciseError, match=says):
            check_latent_knn(value, model, x, y, beta=4.0)
    with pytest.raises(ExerciseError, match="beta = 1; the exercise asks for beta = 4"):
        check_latent_knn(knn, cvaelib.ConditionalVAE(latent_dim=8, beta=1.0, prior="standard"), x, y, beta=4.0)
    untrained = cvaelib.ConditionalVAE(latent_dim=8, beta=4.0, prior="standard").eval()
    with pytest.raises(ExerciseError, match="no better than an untrained one"):
        check_latent_knn(latent.knn_accuracy(latent.latents(untrained, x, y), y), untrained, x, y, beta=4.0)
    with pytest.raises(ExerciseError, match="not a class-conditional one"):
        check_latent_knn(knn, cvaelib.ConvVAE(latent_dim=8, beta=4.0), x, y, beta=4.0)


# --- the marker convention ----------------------------------------------------------------------------------------
def test_stub_replaces_each_block_at_its_indentation():
    src = "\n".join(["def f(x):", "    y = 1", f"    {BEGIN}", "    return x + y", f"    {END}", "",
                     f"{BEGIN}", "z = f(2)", f"{END}", "print(z)"])
    out = stub_source(src, 3, 'the "sum"')
    assert BEGIN not in out and "return x + y" not in out and "z = f(2)" not in out
    assert '    raise NotImplementedError("Exercise 3: the \\"sum\\"")' in out.split("\n")
    assert 'raise NotImplementedError("Exercise 3: the \\"sum\\"")' in out.split("\n")
    assert out.split("\n")[1] == "    y = 1" and out.endswith("print(z)")
    compile(out, "<stub>", "exec")
    with pytest.raises(KitError, match="has no"):
        stub_source(f"{BEGIN}\nx = 1", 1, "t")
    with pytest.raises(KitError, match="without a"):
        stub_source(f"x = 1\n{END}", 1, "t")


TOY = f'''# %% [markdown]
# # 99 · Toy lesson
#
# ### Exercise 1 · Write the KL term
# Sum over dimensions, average over images.

# %%
import torch


def my_kl(mu, logvar):
    {BEGIN}
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar) / mu.shape[0]
    {END}


# %%
from cvaelib.teach import check_kl

check_kl(my_kl)

# %% [markdown]
# ### Exercise 2 · Write the reparameterisation step

# %%
# Exercise: reparameterise
{BEGIN}
def my_rep(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
{END}
print("defined")

# %%
from cvaelib.teach import check_reparameterize

check_reparameterize(my_rep)

# %%
print("the lesson goes on", my_kl(torch.zeros(1, 2), torch.zeros(1, 2)))
'''


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "src" / "99_toy.py"
    path.parent.mkdir()
    path.write_text(TOY)
    return path


def _cli(*args, cwd=REPO):
    """The command line in a subprocess (verify and grade spawn one more interpreter per notebook)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "cvaelib.teach", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _main(*args, capsys=None):
    """The command line in this process (fast): exit status and what it printed."""
    code = main([str(a) for a in args])
    return code, (capsys.readouterr().out if capsys else "")


def test_find_exercises_titles_and_checks(toy):
    exercises = find_exercises(read_notebook(toy))
    assert [(e.number, e.title, e.check_names) for e in exercises] == [
        (1, "Write the KL term", ["check_kl"]), (2, "reparameterise", ["check_reparameterize"])]
    assert BEGIN not in exercises[0].solution and "logvar.exp()" in exercises[0].solution


def test_student_command_writes_a_synced_pair_without_solutions(toy, tmp_path):
    proc = _cli("student", toy.parent, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "99_toy.py: 2 exercises" in proc.stdout
    py, ipynb = tmp_path / "out" / "99_toy.py", tmp_path / "out" / "99_toy.ipynb"
    text = py.read_text()
    assert BEGIN not in text and "logvar.exp()" not in text and "randn_like" not in text
    assert 'raise NotImplementedError("Exercise 1: Write the KL term")' in text
    assert 'raise NotImplementedError("Exercise 2: reparameterise")' in text
    nb_py, nb_ipynb = read_notebook(py), read_notebook(ipynb)
    assert [(c.cell_type, c.source) for c in nb_py.cells] == [(c.cell_type, c.source) for c in nb_ipynb.cells]
    assert nb_ipynb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert all(not c.get("outputs") for c in json.loads(ipynb.read_text())["cells"] if c["cell_type"] == "code")
    assert _cli("student", tmp_path / "missing", tmp_path / "o").stderr.startswith("error: ")


def test_student_badges_can_point_at_the_published_student_versions(tmp_path, capsys):
    src = NOTEBOOKS[0]
    assert _main("student", src, tmp_path / "s", "--repo", "https://github.com/prof/ml-class", "--branch",
                 "students", "--folder", "")[0] == 0
    text = (tmp_path / "s" / src.name).read_text()
    assert f"colab.research.google.com/github/prof/ml-class/blob/students/{src.stem}.ipynb" in text
    assert config.install_spec() in text  # the library still comes from the kit's repository
    assert read_notebook(tmp_path / "s" / src.name).cells[0].source == \
        read_notebook(tmp_path / "s" / (src.stem + ".ipynb")).cells[0].source


def _submission(tmp_path, student_py):
    """Alice's work: exercise 1 wrong (KL summed over the batch), exercise 2 right."""
    sub = tmp_path / "alice" / "99_toy.py"
    sub.parent.mkdir()
    text = student_py.read_text()
    text = text.replace('    # YOUR CODE HERE\n    raise NotImplementedError("Exercise 1: Write the KL term")',
                        "    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar)")
    text = text.replace('# YOUR CODE HERE\nraise NotImplementedError("Exercise 2: reparameterise")',
                        "def my_rep(mu, logvar):\n    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)")
    sub.write_text(text)
    return sub


def test_verify_and_grade_on_a_toy_notebook(toy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert _main("student", toy, tmp_path / "stud")[0] == 0
    stud = tmp_path / "stud" / "99_toy.py"
    report = verify(stud, toy)
    assert report.ok, report.problems
    assert [(e["number"], e["student"], e["solution"]) for e in report.exercises] == [
        (1, "NotImplementedError: Exercise 1: Write the KL term", "passes its checks"),
        (2, "NotImplementedError: Exercise 2: reparameterise", "passes its checks")]

    sub = _submission(tmp_path, stud)
    report = grade(sub, toy)
    assert report.score == (1, 2)
    assert "wrong: ExerciseError: check_kl: you summed over the batch" in report.exercises[0]["message"]
    # the untouched student version: both "not attempted"; the key itself: full marks
    untouched = grade(stud, toy)
    assert untouched.score == (0, 2) and all(e["message"].startswith("not attempted") for e in untouched.exercises)
    assert grade(toy).score == (2, 2)

    # the same through the command line, with a CSV for the gradebook
    csv_path = tmp_path / "grades.csv"
    proc = _cli("grade", tmp_path / "alice", "--key", toy.parent, "--csv", csv_path)
    assert proc.returncode == 0, proc.stderr
    assert "99_toy.py: 1/2" in proc.stdout and "summed over the batch" in proc.stdout
    rows = csv_path.read_text().splitlines()
    assert rows[1].split(",")[2:4] == ["1", "0"] and rows[2].split(",")[2:4] == ["2", "1"]


def test_verify_reports_a_stub_that_does_not_stop(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("SMOKE", "1")
    write_pair(to_student(read_notebook(toy)), tmp_path / "stud" / "99_toy.py")
    stud = tmp_path / "stud" / "99_toy.py"
    stud.write_text(stud.read_text().replace('raise NotImplementedError("Exercise 1: Write the KL term")',
                                             "return torch.tensor(0.0)"))
    report = verify(stud, toy)
    assert not report.ok
    assert "exercise 1: the student version should stop with NotImplementedError" in report.problems[0]


def test_answer_key_and_nbgrader_metadata(toy, tmp_path, capsys):
    key = answer_key([toy])
    assert "### Exercise 2: reparameterise" in key and "Checked by `check_reparameterize`" in key
    assert "torch.randn_like(mu)" in key and BEGIN not in key
    nb = to_nbgrader(read_notebook(toy))
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    solutions = [m["grade_id"] for m in meta if m and m["solution"]]
    tests = [(m["grade_id"], m["points"]) for m in meta if m and m["grade"]]
    assert solutions == ["exercise_1", "exercise_2"] and tests == [("check_1", 1), ("check_2", 1)]
    assert _main("solutions", toy.parent, tmp_path / "key")[0] == 0
    assert "Write the KL term" in (tmp_path / "key" / "SOLUTIONS.md").read_text()
    assert _main("nbgrader", toy.parent, tmp_path / "course")[0] == 0
    written = json.loads((tmp_path / "course" / "source" / "99_toy" / "99_toy.ipynb").read_text())
    assert sum(1 for c in written["cells"] if c["metadata"].get("nbgrader", {}).get("solution")) == 2


def test_student_of_the_real_notebooks_has_no_solution_left():
    for path in NOTEBOOKS:
        nb = read_notebook(path)
        student = to_student(nb)
        text = "\n".join(c.source for c in student.cells)
        assert BEGIN not in text and END not in text, path.name
        for ex in find_exercises(nb):
            assert f'NotImplementedError("Exercise {ex.number}: ' in student.cells[ex.cell].source


def test_badges_follow_the_configured_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["badges", "--check"]) == 0
    line = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research."
            "google.com/github/someone/old/blob/dev/notebooks/02_vae.ipynb)\n"
            '"cvaelib @ git+https://github.com/someone/old.git"\n'
            'subprocess.run(["git", "clone", "-q",\n    "https://github.com/someone/old.git", "kit-src"])\n'
            "git clone --depth 1 https://github.com/someone/old\n"
            '"git+https://github.com/openai/CLIP.git"')
    monkeypatch.setattr(config, "REPO_URL", "https://github.com/teacher/my-course")
    monkeypatch.setattr(config, "BRANCH", "spring")
    out = rewrite_text(line)
    assert "colab.research.google.com/github/teacher/my-course/blob/spring/student/02_vae.ipynb" in out  # students' copies
    assert '"cvaelib @ git+https://github.com/teacher/my-course.git"' in out
    assert '"https://github.com/teacher/my-course.git", "kit-src"' in out
    assert "git clone --depth 1 https://github.com/teacher/my-course.git" in out
    assert "openai/CLIP.git" in out  # other repositories are left alone
    assert json.loads(rewrite_text(json.dumps(line))) == out  # the .ipynb (JSON) changes exactly like the .py
    assert rewrite_text(out) == out


# --- the real notebooks, executed: students stop only at exercises, solutions pass -----------------------------------
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_version_stops_only_at_exercises(notebook, tmp_path, data_root):
    student_dir = tmp_path / "student"
    write_pair(to_student(read_notebook(notebook)), student_dir / notebook.name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "SMOKE": "1",
           "CVAELIB_DATA": str(data_root), "CVAELIB_WORK": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, "-m", "cvaelib.teach", "verify", str(notebook), "--student",
                           str(student_dir)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    n = len(find_exercises(read_notebook(notebook)))
    assert proc.stdout.count("solution -> passes its checks") == n >= 2


def test_grade_an_ipynb_submission_with_shell_magics_and_outputs(toy, tmp_path, monkeypatch):
    import jupytext
    import nbformat

    monkeypatch.setenv("SMOKE", "1")
    nb = to_student(read_notebook(toy))
    nb.cells.insert(1, nbformat.v4.new_code_cell("!pip install -q something\n%matplotlib inline\nprint('hi')"))
    nb.cells[2].source = nb.cells[2].source.replace(
        '# YOUR CODE HERE\n    raise NotImplementedError("Exercise 1: Write the KL term")',
        "return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar) / mu.shape[0]")
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="saved output")]
    jupytext.write(nb, tmp_path / "bob_99_toy.ipynb")
    report = grade(tmp_path / "bob_99_toy.ipynb", toy)
    assert report.problems == [] and report.score == (1, 2)
    assert report.exercises[1]["message"] == "not attempted: NotImplementedError: Exercise 2: reparameterise"


def test_predict_first_questions_hint_without_giving_the_answer(monkeypatch, capsys):
    from cvaelib.teach import Question, check_prediction
    from cvaelib.teach.checks import _core

    monkeypatch.setattr(_core, "QUESTIONS", {})
    _core.register_questions({"99.kl": Question({"a": "it rises", "b": "it falls"}, "b", "a heavier KL weight "
                                                "pulls the codes to the prior.", "which term does beta multiply?")})
    with pytest.raises(ExerciseError, match=r"not quite.*Hint: which term does beta multiply\?") as wrong:
        check_prediction("99.kl", "a")
    assert "(b)" not in str(wrong.value)
    with pytest.raises(ExerciseError, match="not one of the choices"):
        check_prediction("99.kl", "c")
    with pytest.raises(NotImplementedError):
        check_prediction("99.kl", "")
    with pytest.raises(KitError, match="unknown question"):
        check_prediction("99.nope", "a")
    check_prediction("99.kl", " (B) ")
    assert capsys.readouterr().out.startswith("correct: check_prediction: (b) it falls.")
    with pytest.raises(ValueError):
        _core.register_questions({"99.kl": Question({"a": "x"}, "a", "", "")})


LESSON_QUESTIONS = sorted(q for q in QUESTIONS if q.split(".")[0] in ("01", "02", "03", "04", "06", "07", "09"))


@pytest.mark.parametrize("qid", LESSON_QUESTIONS)
def test_lesson_predictions_accept_only_their_answer_and_hint_without_it(qid, capsys):
    """Lessons 01-04, 06, 07 and 09 show each registered question's choices and ask it with check_prediction; every wrong
    choice gets the hint, never the right choice's text."""
    from cvaelib.teach import check_prediction

    q = QUESTIONS[qid]
    lesson = next(p for p in NOTEBOOKS if p.name.startswith(qid.split(".")[0]))
    assert f'check_prediction("{qid}", prediction)' in lesson.read_text()
    shown = " ".join(" ".join(c.source.split()) for c in read_notebook(lesson).cells if c.cell_type == "markdown")
    for letter, text in q.choices.items():  # the student reads every choice before answering
        assert f"({letter}) {' '.join(text.split())}" in shown, (qid, letter)
    for letter in q.choices:
        if letter == q.answer:
            check_prediction(qid, letter)
            assert capsys.readouterr().out.startswith(f"correct: check_prediction: ({letter})")
            continue
        with pytest.raises(ExerciseError, match="not quite") as err:
            check_prediction(qid, letter)
        assert q.hint in str(err.value) and q.choices[q.answer] not in str(err.value)
