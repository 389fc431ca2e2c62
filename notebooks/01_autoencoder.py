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
# > **Instructor version: solutions included.** Students work in the student version (the Colab badge opens it; `python -m cvaelib.teach student` regenerates it).
#
# **You will learn**
# - how an encoder squeezes a 28×28 image into a handful of numbers and a decoder rebuilds it, and why the loss that
#   trains them is a binary cross-entropy *summed* over pixels;
# - how the size of that bottleneck trades compression for detail, and what a 2-number code looks like;
# - why decoding *random* codes from a plain autoencoder gives garbage, which motivates the VAE (lesson 02).
#
# **Prerequisites:** PyTorch basics (tensors, `nn.Module`, autograd).
# **Runtime:** about 2 min on a Colab T4, about 4 min on a 2-core CPU (`SMOKE=1`: under a minute).
#
# Data: MNIST (LeCun, Cortes & Burges, 1998; CC BY-SA 3.0).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import cvaelib
from cvaelib.classifier import predict
from cvaelib.notebook import setup, show, show_source
from cvaelib.teach import check_prediction

env = setup(seed=0)  # device, SMOKE flag, data folder; setup(drive=True) keeps checkpoints on Google Drive
EPOCHS = 1 if env.smoke else 6

# %% [markdown]
# ## 1. The data
# The whole training split sits in memory as one `uint8` tensor `[60000, 1, 28, 28]`; batches are slices of it (on a
# CPU much faster than decoding one PIL image at a time). A tenth of it is held out for validation.

# %%
train = cvaelib.load_dataset("mnist", env.data_root, "train", download=env.download)
test = cvaelib.load_dataset("mnist", env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 2000), cvaelib.subset(test, 500)
train, val = cvaelib.train_val_split(train, val_fraction=0.1, seed=0)
print(f"train {len(train)}, val {len(val)}, test {len(test)} images of shape {train.shape}")
show(cvaelib.show_grid(test.float_images()[:20], titles=[test.class_names[int(k)] for k in test.labels[:20]]))

# %% [markdown]
# ## 2. The model: an encoder, a bottleneck, a decoder
# **Goal:** learn a code of `latent_dim` numbers from which the image can be rebuilt. Nobody tells the network what
# the numbers should mean; the only pressure is "reconstruct the input through this narrow pipe".
#
# ```
# x [1×28×28] ─ conv 4×4 /2 (32 ch) ─ conv 4×4 /2 (64 ch) ─ flatten (3,136) ─ linear 256 ─ linear ─▶ z [latent_dim]
# z ─ linear 256 ─ linear 3,136 ─ deconv /2 (32 ch) ─ deconv /2 (1 ch) ─▶ logits [1×28×28]
# ```
# The encoder halves the image twice with stride-2 convolutions (28 → 14 → 7), flattens the 64 feature maps, passes
# them through a **hidden fully connected layer of 256 units**, and a last linear layer outputs the code z. The
# decoder mirrors it and ends in *logits*: unbounded numbers that a sigmoid turns into pixel intensities in (0, 1).

# %%
print(cvaelib.ConvAutoencoder(image_shape=train.shape, latent_dim=16))

# %% [markdown]
# ## 3. The loss, derived
# Read each output pixel x̂ᵢ = σ(ℓᵢ) as the probability that pixel i is "on". If the pixels are independent given
# the code, the probability the decoder gives the whole image x is a product, and its negative log a sum:
#
# $$ p(x \mid z) = \prod_{i=1}^{784} \hat x_i^{\,x_i}\,(1-\hat x_i)^{1-x_i}
# \quad\Longrightarrow\quad
# -\log p(x \mid z) = -\sum_{i=1}^{784} \big[x_i \log \hat x_i + (1-x_i)\log(1-\hat x_i)\big]. $$
#
# The bracket is the **binary cross-entropy** of one pixel, so an image's loss is the BCE *summed* over its 784
# pixels (a log of a product of independent terms is a sum), in **nats** (natural-log units). A batch's loss is the
# *mean* over its images, so it does not change with the batch size. MNIST pixels are grey levels, not 0/1; the BCE
# is still smallest when x̂ = x, which is all we need here (Loaiza-Ganem & Cunningham 2019 make it an exact density).
# Computing it from the logits ℓ instead of σ(ℓ) avoids log(0): `F.binary_cross_entropy_with_logits` does both steps
# in one numerically stable function.
#
# ### Exercise · Write the reconstruction loss
# Complete `recon_loss(logits, x)`: per image the BCE summed over its pixels, then the mean over the images.
# `logits` and `x` have shape `[batch, 1, 28, 28]`.

# %%
def recon_loss(logits, x):
    ### BEGIN SOLUTION
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    ### END SOLUTION


# %%
from cvaelib.teach import check_recon_loss

check_recon_loss(recon_loss)

# %% [markdown]
# How the kit writes it (`cvaelib.losses.bernoulli_nll`, used by every model of the course):

# %%
show_source(cvaelib.losses.bernoulli_nll)

# %% [markdown]
# **Your loss trains the model.** A kit model says how to compute its loss in one method, `loss(x, c)`, which returns
# a dict of named terms (`"loss"` is what the optimiser minimises). We subclass the kit's autoencoder so that its
# loss is *your* `recon_loss`; `cvaelib.fit` then runs the usual loop (Adam, a progress bar with the live loss, a
# validation pass per epoch, a checkpoint: re-running the cell loads it instead of training again).

# %%
class MyAutoencoder(cvaelib.ConvAutoencoder):
    """The kit's convolutional autoencoder, trained with the recon_loss written above."""

    def loss(self, x, c=None):
        z, _ = self.encode(x)
        recon = recon_loss(self.decode(z), x)
        return {"loss": recon, "recon": recon}


ae = MyAutoencoder(image_shape=train.shape, latent_dim=16)
print(f"{ae.num_parameters():,} parameters")
history = cvaelib.fit(ae, train, val, epochs=EPOCHS, device=env.device,
                      checkpoint=env.checkpoint("01_ae_z16"), resume=True)
env.smoke_banner("6 epochs on 54,000 digits; test MSE per pixel 0.0070 with z = 16 vs 0.0675 for the mean image, "
                 "0.038 with z = 2; the judge (100 % right on the inputs) still sees the input's digit in 98 % of "
                 "z = 16 and 58 % of z = 2 reconstructions (measured on a 2-core CPU, about 3 min of CPU time).")
show(cvaelib.plot_history(history))
print(f"after {history.epochs} epochs: train {history.train[-1]['recon']:.1f}, "
      f"val {history.val[-1]['recon']:.1f} nats per image")

# %% [markdown]
# The loss of an image started near 784 · log 2 ≈ 543 nats (every pixel a coin flip) and falls to the value printed
# above. The validation loss is computed after each epoch, the training loss is the average over the epoch while the
# weights were still improving, so early in training the validation curve can sit *below* the training curve.
#
# ## 4. Reconstructions, by hand
# ### Exercise · Reconstruct by hand
# Write the three steps a reconstruction takes: encode `x` to its code (an autoencoder's `encode` returns the pair
# `(z, None)`, the same contract as the VAEs later, whose second element will be a variance), decode the code to
# logits, turn the logits into pixel intensities in [0, 1]. Use the model's `encode` and `decode` methods.

# %%
def reconstruct(model, x):
    ### BEGIN SOLUTION
    z = model.encode(x)[0]
    return torch.sigmoid(model.decode(z))
    ### END SOLUTION


# %%
from cvaelib.teach import check_reconstruct

check_reconstruct(reconstruct)

# %% [markdown]
# Your `reconstruct` on test images the model never saw (top: input, bottom: through a 16-number bottleneck), and
# the sanity check every model deserves: is it better than the laziest possible "model", which always outputs the
# mean training image?

# %%
ae.eval()
x_test = test.float_images().to(env.device)
with torch.no_grad():
    recon = torch.cat([reconstruct(ae, x_test[i:i + 500]) for i in range(0, len(x_test), 500)]).cpu()
x_test = x_test.cpu()
show(cvaelib.show_grid(torch.cat([x_test[:10], recon[:10]]), ncols=10, row_labels=["input", "z = 16"]))
mean_image = train.float_images().mean(0, keepdim=True)
mse_model = torch.mean((recon - x_test) ** 2).item()
mse_mean = torch.mean((mean_image - x_test) ** 2).item()
print(f"test MSE per pixel: autoencoder {mse_model:.4f} vs mean image {mse_mean:.4f}")

# %% [markdown]
# **Takeaway:** 16 numbers are enough to redraw a digit with most of its strokes; the code is a learned compression.
#
# ## 5. How small can the bottleneck be?
# With 16 numbers most strokes survive. **Predict first:** we now train the same autoencoder with a code of only
# **2** numbers. Its reconstructions will be...
#
# (a) they look the same as with 16 numbers; (b) the rough shape survives, details go, and some digits turn into
# other digits; (c) pure noise: 2 numbers cannot describe an image.

# %%
# Exercise: predict - reconstructions through a 2-number code
# Answer with a letter: prediction = "a", "b" or "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("01.bottleneck", prediction)

# %%
ae2 = MyAutoencoder(image_shape=train.shape, latent_dim=2)
cvaelib.fit(ae2, train, val, epochs=EPOCHS, device=env.device, checkpoint=env.checkpoint("01_ae_z2"), resume=True)
ae2.eval()
with torch.no_grad():
    recon2 = reconstruct(ae2, x_test[:500].to(env.device)).cpu()
show(cvaelib.show_grid(torch.cat([x_test[:10], recon2[:10], recon[:10]]), ncols=10,
                       row_labels=["input", "z = 2", "z = 16"]))
print(f"test MSE per pixel (first 500 images): z = 2 {torch.mean((recon2 - x_test[:500]) ** 2):.4f}, "
      f"z = 16 {torch.mean((recon[:500] - x_test[:500]) ** 2):.4f}")

# Does the digit survive? An independent classifier (a small CNN trained on the real training images: the "judge")
# reads each reconstruction; we count how often it still sees the input's digit.
judge = env.judge("mnist", train)
y500 = test.labels[:500]
judged = {name: float((predict(judge, images) == y500).float().mean())
          for name, images in [("input", x_test[:500]), ("z = 2", recon2), ("z = 16", recon[:500])]}
print("the judge sees the input's digit in: " + ", ".join(f"{k} {v:.0%}" for k, v in judged.items()))
seen2 = predict(judge, recon2)
swaps = torch.stack([y500, seen2], 1)[seen2 != y500].sort(1).values  # unordered pairs {input digit, judged digit}
pairs, counts = swaps.unique(dim=0, return_counts=True)
print("z = 2 turns digits into each other most often for the pairs: " + ", ".join(
    f"{int(a)}/{int(b)} ({int(n)}x)" for (a, b), n in sorted(zip(pairs.tolist(), counts.tolist()), key=lambda t: -t[1])[:4]))

# %% [markdown]
# A 2-number code is a point on a plane, so we can *look* at it: every test image is a dot at its code, coloured by
# its class. Nothing told the encoder the classes; any order you see, it found on its own.

# %%
codes2 = ae2.embed(x_test[:2000].to(env.device)).cpu()
fig, ax = plt.subplots(figsize=(5.5, 4.6))
points = ax.scatter(codes2[:, 0], codes2[:, 1], c=test.labels[:2000], cmap="tab10", s=4)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.set(xlabel="z[0]", ylabel="z[1]", title="codes of 2,000 test images (z = 2 autoencoder)")
show(fig)

# %% [markdown]
# Digits form regions, but neighbours overlap — the pairs printed above, in our full run 4/9 among the first —
# which is exactly what the blurry z = 2 reconstructions showed. **Takeaway:** the bottleneck's size sets how much of
# each image survives; at 2 numbers the code says roughly *which digit and how slanted*, not the strokes.
#
# ## 6. Can we *generate* with it? Decode random codes
# A generative model lets us draw *new* images. The obvious attempt: pick random codes z ~ N(0, I) and decode them
# with the 16-number autoencoder. **Predict first:** you will see...
#
# (a) new, clear digits; (b) mostly blobs and broken strokes; (c) the same digit 16 times.

# %%
# Exercise: predict - decoding random N(0, I) codes
# Answer with a letter: prediction = "a", "b" or "c"
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("01.random_codes", prediction)

# %%
show(cvaelib.show_samples(ae, n=16, seed=0))

# %% [markdown]
# Why? Look at where the real codes of test images live:

# %%
codes = ae.embed(x_test[:2000].to(env.device)).cpu()
print("per-dimension mean of real codes:", codes.mean(0)[:6].numpy().round(2), "...")
print("per-dimension std  of real codes:", codes.std(0)[:6].numpy().round(2), "...")
print(f"typical length of a real code {codes.norm(dim=1).median():.1f}, of a N(0, I) draw "
      f"{torch.randn(2000, codes.shape[1]).norm(dim=1).median():.1f}")

# %% [markdown]
# The codes have arbitrary centres and scales, set by whatever the encoder happened to learn; a random N(0, I) code
# lands in regions the decoder never saw. The 2-D code shows it directly: here are N(0, I) draws (black) on top of
# the real codes.

# %%
fig, ax = plt.subplots(figsize=(5.5, 4.6))
ax.scatter(codes2[:, 0], codes2[:, 1], c=test.labels[:2000], cmap="tab10", s=4)
ax.scatter(*torch.randn(200, 2, generator=torch.Generator().manual_seed(0)).T, c="k", marker="x", s=12,
           label="z ~ N(0, I)")
ax.set(xlabel="z[0]", ylabel="z[1]", title="real codes (colours) vs random codes (black)")
ax.legend(loc="upper right")
show(fig)

# %% [markdown]
# **Takeaway:** an autoencoder compresses, but it is not a generative model: nothing shapes the space *between* and
# *around* the codes, so random codes decode to blobs. The variational autoencoder fixes exactly this, by making each
# code a small distribution and pulling all of them towards N(0, I).
#
# ## What's next
# [02 · The variational autoencoder](02_vae.ipynb): the reparameterisation trick, the ELBO derived, and a training
# loop you write yourself.
