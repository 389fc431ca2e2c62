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
# > **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each exercise tells you what is wrong and gives a hint.
#
# **You will learn**
# - the reparameterisation trick that makes a *random* code differentiable;
# - the two terms of the ELBO (reconstruction and KL) and how they move during training;
# - how β trades sharp reconstructions for a latent space you can sample from.
#
# **Prerequisites:** lesson 01 (autoencoder).
# **Runtime:** about 3 min on a Colab T4, about 6 min on a laptop CPU (`SMOKE=1`: seconds).
#
# Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, arXiv:1312.6114;
# Higgins et al. (2017), *β-VAE*, ICLR. Data: MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import torch

import cvaelib
from cvaelib.losses import gaussian_kl, reparameterize
from cvaelib.notebook import setup, show, show_source

env = setup(seed=0)
EPOCHS = 1 if env.smoke else 10

train = cvaelib.load_dataset("mnist", env.data_root, "train", download=env.download)
test = cvaelib.load_dataset("mnist", env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 2000), cvaelib.subset(test, 500)
train, val = cvaelib.train_val_split(train, 0.1, seed=0)

# %% [markdown]
# ## 1. From a code to a distribution over codes
# The encoder now outputs a mean μ(x) and a log-variance log σ²(x) per latent dimension: q(z|x) = N(μ, σ²).
# To train through a random draw we write it as a deterministic function of noise:
#
# $$ z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I) $$
#
# Gradients flow to μ and σ; the randomness sits in ε.

# %%
show_source(reparameterize)
mu = torch.zeros(3, requires_grad=True)
logvar = torch.zeros(3, requires_grad=True)
z = reparameterize(mu, logvar)
z.sum().backward()
print("z =", z.detach().numpy().round(2), "| dz/dmu =", mu.grad.numpy())

# %% [markdown]
# ### Exercise 1 · Write the reparameterisation step
# Given the encoder's `mu` and `logvar` (same shape), return one sample z ~ N(μ, σ²) that gradients can flow
# through. Mind that σ = exp(½ log σ²), and draw ε with `torch.randn_like`.

# %%
def my_reparameterize(mu, logvar):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 1: Write the reparameterisation step")


# %%
from cvaelib.teach import check_reparameterize

check_reparameterize(my_reparameterize)

# %% [markdown]
# ## 2. The ELBO
# Training maximises a lower bound on log p(x):
#
# $$ \log p(x) \ge \underbrace{\mathbb E_{q(z|x)}[\log p(x|z)]}_{-\text{recon}} - \beta\,\underbrace{\mathrm{KL}(q(z|x)\,\|\,\mathcal N(0,I))}_{\text{kl}} $$
#
# The reconstruction term is the Bernoulli log-likelihood (binary cross-entropy on logits, summed over pixels);
# the KL term has a closed form. β = 1 is the true ELBO.

# %%
show_source(gaussian_kl)
show_source(cvaelib.MLPVAE)

# %% [markdown]
# ### Exercise 2 · Write the KL term
# For q = N(μ, σ²) and the prior N(0, I) the KL divergence of one latent dimension is
# ½ (μ² + σ² − 1 − log σ²). Sum it over the latent dimensions and average over the images of the batch
# (`mu` and `logvar` have shape `[batch, latent]`).

# %%
def my_kl(mu, logvar):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: Write the KL term")


# %%
from cvaelib.teach import check_kl

check_kl(my_kl)

# %% [markdown]
# ## 3. Train the classic MLP VAE (latent 20) and watch both terms

# %%
vae = cvaelib.MLPVAE(image_shape=train.shape, latent_dim=20)
history = cvaelib.fit(vae, train, val, epochs=EPOCHS, device=env.device,
                      checkpoint=env.work_dir / "02_vae_mlp.pt", resume=True)
show(cvaelib.plot_history(history))

# %% [markdown]
# Reconstruction error falls while the KL *rises*: the encoder spends nats of information in z to describe each
# image, and the KL term charges for every nat. Reconstructions:

# %%
show(cvaelib.plot_reconstructions(vae, test.float_images()[:10]))

# %% [markdown]
# ## 4. Sampling from the prior
# Because the KL term pulls every q(z|x) towards N(0, I), random codes z ~ N(0, I) now decode to digits,
# unlike lesson 01's autoencoder.

# %%
show(cvaelib.show_samples(vae, n=32, seed=1))

# %% [markdown]
# ## 5. The β trade-off
# Weighting the KL by β changes the deal: small β → sharper reconstructions but a latent space that no longer
# matches N(0, I) (samples suffer); large β → blurry reconstructions, smooth latent space.

# %%
betas = (0.2, 1.0, 4.0)
rows, labels = [], []
x = test.float_images()[:8]
for beta in betas:
    model = cvaelib.ConvVAE(image_shape=train.shape, latent_dim=16, beta=beta)
    h = cvaelib.fit(model, train, val, epochs=EPOCHS, device=env.device,
                    checkpoint=env.work_dir / f"02_vae_beta{beta}.pt", resume=True, progress=False)
    terms = h.val[-1]
    print(f"beta={beta}: val recon {terms['recon']:.1f} nats, KL {terms['kl']:.1f} nats")
    rows += [cvaelib.reconstruct_images(model, x),
             model.sample(8, generator=torch.Generator().manual_seed(0)).cpu()]
    labels += [f"β={beta} recon", f"β={beta} sample"]
show(cvaelib.show_grid(torch.cat([x] + rows), ncols=8, row_labels=["input"] + labels))

# %% [markdown]
# **Takeaway:** the VAE is an autoencoder whose codes form a distribution we can sample from; β sets the price of
# information in the code.
#
# ## What's next
# [03 · The conditional VAE](03_cvae.ipynb): tell the model *which* digit or garment to draw.
