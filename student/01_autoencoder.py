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
# # 01 · The autoencoder: what a bottleneck learns
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/01_autoencoder.ipynb)
#
# > **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each exercise tells you what is wrong and gives a hint.
#
# **You will learn**
# - how an encoder squeezes a 28×28 image into a handful of numbers and a decoder rebuilds it;
# - how the size of that bottleneck trades compression for detail;
# - why decoding *random* codes from a plain autoencoder gives garbage, which motivates the VAE (lesson 02).
#
# **Prerequisites:** PyTorch basics (tensors, `nn.Module`, a training loop).
# **Runtime:** about 2 min on a Colab T4, about 4 min on a laptop CPU (`SMOKE=1`: seconds).
#
# Data: MNIST (LeCun, Cortes & Burges, 1998; CC BY-SA 3.0).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import torch

import cvaelib
from cvaelib.notebook import setup, show, show_source

env = setup(seed=0)  # device, SMOKE flag, data folder; setup(drive=True) keeps checkpoints on Google Drive
EPOCHS = 1 if env.smoke else 8

# %% [markdown]
# ## 1. The data
# The whole training split sits in memory as one `uint8` tensor `[60000, 1, 28, 28]`; batches are slices of it.
# On a CPU this is several times faster than decoding one PIL image at a time.

# %%
train = cvaelib.load_dataset("mnist", env.data_root, "train", download=env.download)
test = cvaelib.load_dataset("mnist", env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 2000), cvaelib.subset(test, 500)
train, val = cvaelib.train_val_split(train, val_fraction=0.1, seed=0)
print(f"train {len(train)}, val {len(val)}, test {len(test)} images of shape {train.shape}")
show(cvaelib.show_grid(test.float_images()[:20], titles=[test.class_names[int(k)] for k in test.labels[:20]]))

# %% [markdown]
# ## 2. The model
# Encoder: two stride-2 convolutions (28 → 14 → 7) and a linear layer down to `latent_dim` numbers.
# Decoder: the mirror image, ending in *logits* (a sigmoid turns them into pixel intensities).
# We train it to minimise the binary cross-entropy between input and output, summed over the 784 pixels.

# %%
show_source(cvaelib.ConvAutoencoder)

# %% [markdown]
# ### Exercise 1 · Write the reconstruction loss
# The decoder outputs *logits*; treating each pixel as a Bernoulli probability, the loss of one image is the
# binary cross-entropy **summed over its pixels**, and a batch's loss is the **average over its images** (so it
# does not depend on the batch size). Complete `recon_loss(logits, x)` with
# `torch.nn.functional.binary_cross_entropy_with_logits`.

# %%
import torch.nn.functional as F


def recon_loss(logits, x):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 1: Write the reconstruction loss")


# %%
from cvaelib.teach import check_recon_loss

check_recon_loss(recon_loss)

# %%
ae = cvaelib.ConvAutoencoder(image_shape=train.shape, latent_dim=16)
print(f"{ae.num_parameters():,} parameters")
history = cvaelib.fit(ae, train, val, epochs=EPOCHS, device=env.device,
                      checkpoint=env.work_dir / "01_ae_z16.pt", resume=True)  # re-running skips finished epochs
show(cvaelib.plot_history(history))

# %% [markdown]
# ## 3. Reconstructions
# Top row: test images the model never saw. Bottom row: what comes back through a 16-number bottleneck.

# %%
x_test = test.float_images()[:10]
show(cvaelib.plot_reconstructions(ae, x_test))

# %% [markdown]
# ### Exercise 2 · Reconstruct by hand
# `plot_reconstructions` hides three steps. Write them: encode `x` to its code (an autoencoder's `encode` returns
# the pair `(z, None)`, the same contract as the VAEs later), decode the code to logits, turn logits into pixel
# intensities in [0, 1].

# %%
def reconstruct(model, x):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: Reconstruct by hand")


# %%
from cvaelib.teach import check_reconstruct

check_reconstruct(reconstruct)

# %% [markdown]
# Is that good? Compare with the laziest possible "model": always output the mean training image.

# %%
recon = cvaelib.reconstruct_images(ae, test.float_images())
mean_image = train.float_images().mean(0, keepdim=True)
mse_model = torch.mean((recon - test.float_images()) ** 2).item()
mse_mean = torch.mean((mean_image - test.float_images()) ** 2).item()
print(f"test MSE per pixel: autoencoder {mse_model:.4f} vs mean image {mse_mean:.4f}")

# %% [markdown]
# ## 4. How small can the bottleneck be?
# With 2 numbers the code is a point on a plane we can draw; with 16 most strokes survive.

# %%
results = {}
for dim in (2, 16):
    model = ae if dim == 16 else cvaelib.ConvAutoencoder(image_shape=train.shape, latent_dim=dim)
    if dim != 16:
        cvaelib.fit(model, train, val, epochs=EPOCHS, device=env.device,
                    checkpoint=env.work_dir / f"01_ae_z{dim}.pt", resume=True, progress=False)
    results[dim] = model
rows = torch.cat([x_test[:8]] + [cvaelib.reconstruct_images(results[d], x_test[:8]) for d in (2, 16)])
show(cvaelib.show_grid(rows, ncols=8, row_labels=["input", "z = 2", "z = 16"]))

# %% [markdown]
# ## 5. Can we *generate* with it? Decode random codes
# A generative model lets us draw new images. The obvious attempt: pick random codes z ~ N(0, I) and decode them.

# %%
show(cvaelib.show_samples(ae, n=16, seed=0))

# %% [markdown]
# Mostly blobs. Why? Look at where the real codes of test images live:

# %%
codes = ae.embed(test.float_images()[:2000].to(env.device)).cpu()
print("per-dimension mean of real codes:", codes.mean(0)[:6].numpy().round(2), "...")
print("per-dimension std  of real codes:", codes.std(0)[:6].numpy().round(2), "...")

# %% [markdown]
# The codes have arbitrary centres and scales, and nothing forces the space *between* them to decode to digits.
# A random N(0, I) code lands in regions the decoder never saw. **Takeaway:** an autoencoder compresses well but
# is not a generative model. The variational autoencoder fixes exactly this by making the codes a distribution
# close to N(0, I).
#
# ## What's next
# [02 · The variational autoencoder](02_vae.ipynb): reparameterisation, the ELBO and sampling from the prior.
