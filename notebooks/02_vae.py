# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The variational autoencoder: codes you can sample
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/02_vae.ipynb)
#
# > **Instructor version: solutions included.** Students work in the student version (the Colab badge opens it; `python -m cvaelib.teach student` regenerates it).
#
# **You will learn**
# - the reparameterisation trick that makes a *random* code differentiable, and its gradient;
# - where the ELBO comes from (derived, with the Gaussian KL in closed form and checked by Monte Carlo), and what β
#   does to it;
# - to train a VAE with a loop you write yourself, and to read its two terms: reconstruction and KL, in nats.
#
# **Prerequisites:** lesson 01 (autoencoder, the Bernoulli reconstruction loss).
# **Runtime:** about 2 min on a Colab T4, about 4 min on a 2-core CPU (`SMOKE=1`: under a minute).
#
# Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, arXiv:1312.6114; Higgins et al. (2017), *β-VAE*,
# ICLR; Burda, Grosse & Salakhutdinov (2016), *Importance Weighted Autoencoders*, ICLR (active units).
# Data: MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import math
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import cvaelib
from cvaelib.checkpoint import load_checkpoint
from cvaelib.notebook import setup, show, show_source
from cvaelib.teach import check_prediction

env = setup(seed=0)
EPOCHS = 1 if env.smoke else 20  # the lesson's VAE
SWEEP_EPOCHS = 1 if env.smoke else 10  # each model of the beta sweep

train = cvaelib.load_dataset("mnist", env.data_root, "train", download=env.download)
test = cvaelib.load_dataset("mnist", env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 2000), cvaelib.subset(test, 500)
train, val = cvaelib.train_val_split(train, 0.1, seed=0)

# %% [markdown]
# ## 1. From a code to a distribution over codes
# **Goal:** make the space of codes something we can *sample* from (lesson 01's autoencoder could not).
#
# **The idea.** The encoder no longer outputs one point z for an image x, but a small Gaussian cloud
# q(z|x) = N(μ(x), diag σ²(x)): a mean and a log-variance per latent dimension. Training draws a z from that cloud,
# decodes it, and (next section) pulls every cloud towards the *prior* N(0, I). Neighbouring clouds overlap, so the
# decoder learns to draw something sensible everywhere the prior puts mass.
#
# **The trouble:** "draw z from q" is a random step, and we need gradients of the loss with respect to μ and σ
# through it. **The trick:** draw the randomness *outside* the network. If ε ~ N(0, 1), then μ + σε has mean
# μ + σ·0 = μ and variance σ²·1 = σ², and an affine function of a Gaussian is Gaussian, so
#
# $$ z = \mu + \sigma\,\varepsilon,\quad \varepsilon \sim \mathcal N(0, I) \qquad\Longrightarrow\qquad z \sim \mathcal N(\mu, \sigma^2),
# \qquad \frac{\partial z}{\partial \mu} = 1,\quad \frac{\partial z}{\partial \sigma} = \varepsilon . $$
#
# The sample is now an ordinary differentiable function of μ and σ; the randomness sits in ε. The encoder outputs
# **log σ²** rather than σ because a linear layer can output any real number, and σ = exp(½ log σ²) is then always
# positive.
#
# ### Exercise · Write the reparameterisation step
# Given the encoder's `mu` and `logvar` (same shape), return one sample z ~ N(μ, σ²) that gradients can flow
# through. Draw ε with `torch.randn_like`.

# %%
def my_reparameterize(mu, logvar):
    ### BEGIN SOLUTION
    eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


# %%
from cvaelib.teach import check_reparameterize

check_reparameterize(my_reparameterize)

# %% [markdown]
# ### Exercise · The gradient with respect to log σ²
# The network's output is log σ², not σ. Work out ∂z/∂(log σ²) on paper for fixed μ and ε, then write it as a
# function `dz_dlogvar(mu, logvar, eps)` (element-wise, same shape as `mu`).

# %%
def dz_dlogvar(mu, logvar, eps):
    ### BEGIN SOLUTION
    return 0.5 * torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


# %%
from cvaelib.teach import check_dz_dlogvar

check_dz_dlogvar(dz_dlogvar)

# %% [markdown]
# Autograd through *your* `my_reparameterize` agrees (we replay the same ε by resetting the random seed):

# %%
mu = torch.tensor([0.0, 1.0, -2.0])
logvar = torch.tensor([0.0, math.log(4.0), math.log(0.25)], requires_grad=True)
torch.manual_seed(1)
z = my_reparameterize(mu, logvar)
z.sum().backward()
torch.manual_seed(1)
eps = torch.randn_like(mu)
print("autograd through my_reparameterize:", logvar.grad.numpy().round(4))
print("your dz_dlogvar:                   ", dz_dlogvar(mu, logvar.detach(), eps).numpy().round(4))
print("(z - mu) / 2:                      ", ((z.detach() - mu) / 2).numpy().round(4))

# %% [markdown]
# The gradient is ½ σε = ½ (z − μ): it depends on the noise that was drawn, so each step's gradient for σ is itself
# random — this is why VAE training curves are noisier than an autoencoder's.
#
# How the kit writes it (`cvaelib.losses.reparameterize`, used by every model's `loss`):

# %%
show_source(cvaelib.losses.reparameterize)

# %% [markdown]
# **Takeaway:** sampling z ~ N(μ, σ²) as μ + σε moves the randomness out of the way of the gradients.
#
# ## 2. The ELBO, derived
# **Goal:** a loss for the encoder *and* the decoder. The model is a prior p(z) = N(0, I) and a decoder p(x|z) (lesson
# 01's Bernoulli pixels); we would like to maximise the log-likelihood log p(x) = log ∫ p(x|z) p(z) dz, but that
# integral over all codes is intractable. Bring in the encoder's q(z|x). Because log p(x) does not depend on z, it
# equals its own average under q, and Bayes' rule p(x) = p(x, z) / p(z|x) holds for every z:
#
# $$ \begin{aligned}
# \log p(x) &= \mathbb E_{q(z|x)}\!\left[\log \frac{p(x, z)}{p(z|x)}\right]
#            = \mathbb E_{q}\!\left[\log \frac{p(x, z)}{q(z|x)}\right] + \mathbb E_{q}\!\left[\log \frac{q(z|x)}{p(z|x)}\right] \\
#           &= \underbrace{\mathbb E_{q}\!\left[\log \frac{p(x, z)}{q(z|x)}\right]}_{\text{ELBO}(x)}
#              + \underbrace{\mathrm{KL}\big(q(z|x)\,\|\,p(z|x)\big)}_{\ge 0}
#            \;\ge\; \text{ELBO}(x).
# \end{aligned} $$
#
# The gap is the KL divergence from q to the true posterior p(z|x): the bound is tight exactly when the encoder gets
# the posterior right. Splitting p(x, z) = p(x|z) p(z) gives the two terms we can compute:
#
# $$ \text{ELBO}(x) = \underbrace{\mathbb E_{q(z|x)}\big[\log p(x|z)\big]}_{-\,\text{recon}}
#                   - \underbrace{\mathrm{KL}\big(q(z|x)\,\|\,\mathcal N(0, I)\big)}_{\text{kl}} . $$
#
# We *minimise* −ELBO = recon + kl. The first term is lesson 01's loss evaluated at one sample z ~ q (your
# `my_reparameterize`); the second has a closed form (next section).
#
# **Nats.** With natural logarithms, log-probabilities and KL divergences are measured in **nats** (1 nat = 1/ln 2 ≈
# 1.44 bits). The KL term is, on average, how many nats the code z carries about the image beyond what the prior
# already says: the price of the information in z.
#
# **β as a weight.** β-VAEs minimise recon + β · kl, i.e. they maximise
# L_β = E_q[log p(x|z)] − β · KL. Since KL ≥ 0, for **β ≥ 1** L_β ≤ ELBO ≤ log p(x): still a lower bound, a looser one.
# For **β < 1**, L_β ≥ ELBO and it is **not** a bound on log p(x) any more; it is a weighted objective that buys sharper
# reconstructions with a latent space that matches the prior less well. Only β = 1 gives the ELBO: to compare
# likelihoods, report recon + kl (β = 1) whatever β you trained with.
#
# ## 3. The KL term in closed form
# For one dimension, q = N(μ, σ²) and p = N(0, 1): write out both log-densities and average over z ~ q, using
# E_q[(z − μ)²] = σ² and E_q[z²] = μ² + σ²:
#
# $$ \begin{aligned}
# \mathrm{KL}(q\,\|\,p) &= \mathbb E_q\big[\log q(z) - \log p(z)\big]
#   = \mathbb E_q\!\left[-\tfrac12\log 2\pi\sigma^2 - \tfrac{(z-\mu)^2}{2\sigma^2} + \tfrac12\log 2\pi + \tfrac{z^2}{2}\right] \\
#   &= -\tfrac12\log\sigma^2 - \tfrac12 + \tfrac12(\mu^2 + \sigma^2)
#    = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log\sigma^2\big).
# \end{aligned} $$
#
# It is 0 exactly when μ = 0 and σ = 1. With independent dimensions the log-densities add up, so the KLs add up.
#
# ### Exercise · Write the KL term
# `mu` and `logvar` have shape `[batch, latent]`: return the KL summed over the latent dimensions and averaged over
# the images of the batch.

# %%
def my_kl(mu, logvar):
    ### BEGIN SOLUTION
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar) / mu.shape[0]
    ### END SOLUTION


# %%
from cvaelib.teach import check_kl

check_kl(my_kl)

# %% [markdown]
# ### Exercise · Check the closed form by Monte Carlo
# A derivation can be wrong; a simulation is an independent check. The KL is an *average* over z ~ q, so it can be
# estimated by drawing n samples and averaging log q(z) − log p(z). Write `mc_kl(mu, logvar, n)` for **one**
# dimension (`mu` and `logvar` are 0-d tensors): draw the n samples with *your* `my_reparameterize` (expand `mu` and
# `logvar` to n copies), evaluate both Gaussian log-densities at them, and average.

# %%
def mc_kl(mu, logvar, n):
    ### BEGIN SOLUTION
    z = my_reparameterize(mu.expand(n), logvar.expand(n))
    log_q = -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())
    log_p = -0.5 * (math.log(2 * math.pi) + z ** 2)
    return (log_q - log_p).mean()
    ### END SOLUTION


# %%
from cvaelib.teach import check_mc_kl

check_mc_kl(mc_kl)

# %% [markdown]
# Your estimate against your closed form, for q = N(1, 0.5²), as the number of samples grows: 20 estimates per n.

# %%
mu1, logvar1 = torch.tensor(1.0), torch.tensor(math.log(0.25))
exact = float(my_kl(mu1.view(1, 1), logvar1.view(1, 1)))
ns = [10, 100, 1000, 10000]
estimates = [[float(mc_kl(mu1, logvar1, n)) for _ in range(20)] for n in ns]
fig, ax = plt.subplots(figsize=(5, 3))
for n, est in zip(ns, estimates):
    ax.scatter([n] * len(est), est, s=8, color="tab:blue")
ax.axhline(exact, color="k", lw=1, label=f"closed form {exact:.3f} nats")
ax.set(xscale="log", xlabel="samples n", ylabel="estimate (nats)", title="Monte-Carlo KL vs closed form")
ax.legend()
show(fig)
for n, est in zip(ns, estimates):
    print(f"n = {n:6d}: mean {torch.tensor(est).mean():.3f}, spread (std) {torch.tensor(est).std():.3f}")

# %% [markdown]
# The estimates scatter around the closed form and tighten like 1/√n. The closed form is exact and free of noise,
# which is why VAEs use it; the Monte-Carlo estimate works for *any* q and p (you will meet priors without a closed
# form). How the kit writes the closed form (`cvaelib.losses.gaussian_kl`):

# %%
show_source(cvaelib.losses.gaussian_kl)

# %% [markdown]
# **Takeaway:** the VAE's loss is recon + KL, both in nats; the KL has a closed form you derived and checked.
#
# ## 4. Train a VAE with your own loop
# **Goal:** put the pieces together. The model is the classic fully connected VAE of Kingma & Welling: 784 → 400 →
# (μ, log σ²) of 20 dimensions → 400 → 784 logits (`cvaelib.MLPVAE`: only `encode` and `decode` are used here). The
# reconstruction term is lesson 01's loss.
#
# ### Exercise · Bring your reconstruction loss
# Paste your `recon_loss` from lesson 01 (the binary cross-entropy summed over pixels, averaged over images).

# %%
def recon_loss(logits, x):
    ### BEGIN SOLUTION
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    ### END SOLUTION


# %%
from cvaelib.teach import check_recon_loss

check_recon_loss(recon_loss)

# %% [markdown]
# The loop: for each batch, encode, reparameterise, decode, add the two terms, and take one Adam step. It records
# both terms at every step, so we can watch them move.

# %%
def train_vae(model, data, epochs, beta=1.0, lr=1e-3, batch_size=128):
    """Minimise recon + beta * KL with Adam; returns the (recon, kl) of every step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = cvaelib.TensorBatches(data, batch_size, shuffle=True, device=env.device, seed=0)
    steps, bar = [], tqdm(total=epochs * len(batches), desc=f"VAE beta={beta}")
    for epoch in range(epochs):
        for x, _ in batches:
            mu, logvar = model.encode(x)
            z = my_reparameterize(mu, logvar)
            recon, kl = recon_loss(model.decode(z), x), my_kl(mu, logvar)
            loss = recon + beta * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append((recon.item(), kl.item()))
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, recon=f"{recon.item():.1f}", kl=f"{kl.item():.1f}")
    bar.close()
    return steps


# %% [markdown]
# Two helpers around it: evaluate both terms on held-out images, and keep a checkpoint so that re-running the lesson
# loads the trained model instead of training again.

# %%
@torch.no_grad()
def val_terms(model, data):
    """Mean (recon, kl) in nats per image over `data`, with one sampled z per image, as in training."""
    x = data.float_images().to(env.device)
    mu, logvar = model.encode(x)
    return recon_loss(model.decode(my_reparameterize(mu, logvar)), x).item(), my_kl(mu, logvar).item()


def train_or_load(name, beta, epochs):
    model = cvaelib.MLPVAE(image_shape=train.shape, latent_dim=20).to(env.device)
    path = env.checkpoint(name)
    if path.exists():
        state = load_checkpoint(path)
        model.load_state_dict(state["state_dict"])
        return model.eval(), state["steps"]
    steps = train_vae(model, train, epochs, beta)
    cvaelib.save_checkpoint(path, {"config": model.config, "state_dict": model.state_dict(), "steps": steps})
    return model.eval(), steps


# %% [markdown]
# **Predict first.** At the start the encoder's q(z|x) is close to N(0, I) for every image. As training proceeds,
# what does the KL term do?
#
# (a) it stays near 0: the prior term wins; (b) it rises from near 0, then levels off; (c) it falls below 0.

# %%
# Exercise: predict - the KL term during training
# Answer with a letter: prediction = "a", "b" or "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("02.kl_training", prediction)

# %%
torch.manual_seed(0)
vae, steps = train_or_load("02_vae_mine", beta=1.0, epochs=EPOCHS)
env.smoke_banner("the MLP VAE after 20 epochs: validation recon 80.0 + KL 25.3 = 105.3 nats per image, the KL "
                 "climbing from 0.1 at the first step to about 25 by epoch 5; the beta sweep (10 epochs each), "
                 "validation recon / KL / active dimensions: beta 0.2: 71.6 / 45.9 / 20 of 20, beta 1: 82.3 / 25.1 / "
                 "20, beta 4: 114.5 / 9.3 / 14 (measured on a 2-core CPU, about 3.5 min of CPU time).")
terms = torch.tensor(steps)
per_epoch = len(steps) // EPOCHS
window = max(1, min(50, len(steps) // 10))  # moving average over `window` steps
smooth = F.avg_pool1d(terms.T[:, None], window, stride=1)[:, 0]
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, row, name in zip(axes, smooth, ("recon", "kl")):
    ax.plot(torch.arange(len(row)) + window, row)
    ax.set(title=f"{name} (nats per image, moving average of {window} steps)", xlabel="step")
    for e in range(1, EPOCHS):
        ax.axvline(e * per_epoch, color="grey", lw=0.5)
show(fig)
last = terms[-per_epoch:].mean(0)
print(f"first step: recon {terms[0, 0]:.1f}, KL {terms[0, 1]:.2f} nats | last epoch (mean): recon {last[0]:.1f}, "
      f"KL {last[1]:.1f}")
print("mean KL per epoch:", ", ".join(f"{float(v):.1f}" for v in terms[:per_epoch * EPOCHS, 1].view(EPOCHS, -1).mean(1)))

# %% [markdown]
# Grey lines mark epochs. The reconstruction error falls while the KL **rises** from near zero: to reconstruct
# better, the encoder must tell images apart, and every nat of information it writes into z costs a nat of KL. In a
# full run (20 epochs) the KL climbs through the first two or three epochs and then levels off, while the
# reconstruction keeps improving slowly: the per-epoch means printed above show both. A SMOKE run is a dozen steps:
# it shows only the first part of that climb.
#
# **Training vs validation.** Compare the last epoch's training average with held-out images:

# %%
val_recon, val_kl = val_terms(vae, val)
print(f"last epoch, training average: recon {last[0]:.1f} + KL {last[1]:.1f} = {last.sum():.1f} nats")
print(f"validation, after training:   recon {val_recon:.1f} + KL {val_kl:.1f} = {val_recon + val_kl:.1f} nats")

# %% [markdown]
# Which one is lower depends on when you look. The training number is an average over the epoch, taken while the
# weights were still improving; the validation number uses the final weights. Early in training — the first epoch,
# or a whole SMOKE run — that lag dominates and validation sits clearly *below* the training average (lesson 01's
# curves show it too). After many epochs the weights barely move within an epoch, and validation ends up slightly
# *above* training: the model fits the images it trains on a little better than new ones, the first sign of
# overfitting. What does *not* explain the gap: both numbers draw one noisy z per image (the sampling noise is not
# switched off for validation), and this model has no dropout or batch normalisation, so `eval()` changes nothing in
# it. The kit's `fit` does the same — its validation pass also samples z — and additionally trains in mixed
# precision where the hardware supports it while evaluating in float32, a much smaller effect.
#
# ## 5. Sampling from the prior
# The KL term pulled every q(z|x) towards N(0, I), so random codes z ~ N(0, I) now land where the decoder has seen
# codes, and decode to digits — unlike lesson 01's autoencoder. Reconstructions (top two rows) and samples:

# %%
x10 = test.float_images()[:10].to(env.device)
with torch.no_grad():
    recon = torch.sigmoid(vae.decode(vae.encode(x10)[0])).cpu()
    samples = torch.sigmoid(vae.decode(torch.randn(30, 20, generator=torch.Generator().manual_seed(1))
                                       .to(env.device))).cpu()
show(cvaelib.show_grid(torch.cat([x10.cpu(), recon, samples]), ncols=10,
                       row_labels=["input", "recon", "samples", "", ""]))

# %% [markdown]
# **Takeaway:** the VAE is an autoencoder whose codes form a distribution we can sample from; the KL term is what
# makes the prior a usable source of codes.
#
# ## 6. The β trade-off
# **Predict first.** We retrain with β = 0.2, 1 and 4 (the weight of the KL term). Going from β = 0.2 to β = 4, the
# reconstruction error and the KL do what?
#
# (a) reconstruction error falls and the KL rises; (b) reconstruction error rises (blurrier) and the KL falls;
# (c) both fall.

# %%
# Exercise: predict - what beta does to the two terms
# Answer with a letter: prediction = "a", "b" or "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("02.beta", prediction)

# %% [markdown]
# Each model trains with your loop. Besides the two terms, we count **active dimensions** (Burda et al. 2016): a
# latent dimension is active if its mean μⱼ(x) varies across images (variance above 0.01); an inactive one has
# q(zⱼ|x) ≈ N(0, 1) for every image, carries nothing, and the decoder learns to ignore it.

# %%
betas = (0.2, 1.0, 4.0)
x_val = val.float_images().to(env.device)
rows, labels, table = [x10.cpu()[:8]], ["input"], []
for beta in betas:
    torch.manual_seed(0)
    model, _ = train_or_load(f"02_vae_beta{beta}", beta=beta, epochs=SWEEP_EPOCHS)
    r, k = val_terms(model, val)
    with torch.no_grad():
        active = int((model.encode(x_val)[0].var(0) > 0.01).sum())
        rows += [torch.sigmoid(model.decode(model.encode(x10[:8])[0])).cpu(),
                 torch.sigmoid(model.decode(torch.randn(8, 20, generator=torch.Generator().manual_seed(0))
                                            .to(env.device))).cpu()]
    labels += [f"β={beta} recon", f"β={beta} sample"]
    table.append((beta, r, k, active))
print(f"{'beta':>5s} {'val recon':>10s} {'val KL':>8s} {'recon + KL':>11s} {'active dims':>12s}   ({SWEEP_EPOCHS} epochs)")
for beta, r, k, active in table:
    print(f"{beta:5.1f} {r:10.1f} {k:8.1f} {r + k:11.1f} {active:9d}/20")
ordered = all(a[1] < b[1] and a[2] > b[2] for a, b in zip(table, table[1:]))
print("recon rises and KL falls with beta:", "yes" if ordered else "not in this run (too short to settle?)")
show(cvaelib.show_grid(torch.cat(rows), ncols=8, row_labels=labels))

# %% [markdown]
# Read the table from top to bottom. A small β makes information in z cheap: the code keeps more nats, the
# reconstructions are sharper (lowest recon), but the codes spread away from N(0, I), so prior samples land in
# places the decoder knows less well. A large β makes every nat expensive: reconstructions blur towards an average
# digit and **dimensions switch off** — the "active dims" column. Push β (or a very strong decoder) far enough and
# *every* dimension switches off: the decoder ignores z, the KL is 0, and all samples look alike. That failure has a
# name, **posterior collapse** (Bowman et al. 2016, *Generating Sentences from a Continuous Space*; Lucas et al.
# 2019, *Don't Blame the ELBO!*). The recon + KL column is −ELBO for every model (β = 1 in the sum); only the model
# trained with β = 1 optimised exactly that.
#
# ## 7. How the kit writes it
# Every kit model's `loss(x, c)` is the same assembly you wrote in the loop (here the base class that `MLPVAE`,
# `ConvVAE` and the CVAEs inherit), and `cvaelib.fit` is your loop with a validation pass, checkpoints, resuming,
# mixed precision and a learning-rate schedule around it. From lesson 03 on, the lessons train with `fit`.

# %%
show_source(cvaelib.models.base.GenerativeModel.loss)

# %% [markdown]
# **Takeaway:** a VAE is trained by minimising recon + β·KL; β = 1 is the ELBO, a lower bound on log p(x); β sets the
# price of a nat in z, trading sharp reconstructions against a latent space that matches the prior.
#
# ## What's next
# [03 · The conditional VAE](03_cvae.ipynb): tell the model *which* digit or garment to draw — and check that it
# listens.
