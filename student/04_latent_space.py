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
# # 04 · Latent spaces: what z holds, walking through it, and a prompt box
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/04_latent_space.ipynb)
#
# > **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each exercise tells you what is wrong and gives a hint.
#
# **You will learn**
# - to *look* at a latent space with t-SNE and PCA, and to *measure* what it holds (k-NN accuracy, silhouette):
#   a VAE's codes cluster by class, a CVAE's codes need not — the class is given, so z holds the style;
# - to walk through latent space: image → image (straight line vs great circle), class → class with a fixed z,
#   one dimension at a time, and "style transfer" (same handwriting, another digit);
# - to turn short text into a class ("a pair of running shoes" → Sneaker) and wire it to interactive widgets.
#
# **Prerequisites:** lessons 02 (VAE) and 03 (CVAE).
# **Runtime:** about 4 min on a Colab T4, about 8 min on a laptop CPU (`SMOKE=1`: seconds).
#
# t-SNE: van der Maaten & Hinton (2008), *Visualizing Data using t-SNE*, JMLR 9; FFT-accelerated t-SNE:
# Linderman et al. (2019), Nature Methods 16 (openTSNE: Poličar, Stražar & Zupan, 2024, JSS 109).
# Spherical interpolation: White (2016), *Sampling Generative Networks*, arXiv:1609.04468.
# Data: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747, MIT licence), MNIST (LeCun et al. 1998).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import torch

import cvaelib
from cvaelib import interpolate as walk
from cvaelib.notebook import setup, show, show_source
from cvaelib.prompts import describe_prompt, parse_prompt, samples_for_prompt
from cvaelib.viz import latent
from cvaelib.viz.widgets import explorer_panel, interpolation_panel, prompt_panel

env = setup(seed=0)
EPOCHS = 1 if env.smoke else 8
N_TSNE = 500 if env.smoke else 3000  # test images in the latent pictures

train = cvaelib.load_dataset("fashion-mnist", env.data_root, "train", download=env.download)
test = cvaelib.load_dataset("fashion-mnist", env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 2000), cvaelib.subset(test, 600)
train, val = cvaelib.train_val_split(train, 0.1, seed=0)
names = train.class_names

# %% [markdown]
# ## 1. Three models, one dataset
# An autoencoder (lesson 01), a VAE (lesson 02) and a CVAE (lesson 03), all with a 16-number code, trained on the
# same Fashion-MNIST images. The CVAE gets β = 1 like the VAE (lesson 03's tuned default is a much smaller β, which
# lets z keep more of everything, the class included), so the comparison changes one thing only: the condition.
# Re-running this cell loads the checkpoints instead of training again.

# %%
models = {
    "AE": cvaelib.ConvAutoencoder(image_shape=train.shape, latent_dim=16),
    "VAE": cvaelib.ConvVAE(image_shape=train.shape, latent_dim=16),
    # like for like: the same code size, width and beta = 1 as the VAE, and the plain N(0, I) prior
    "CVAE": cvaelib.ConditionalVAE(image_shape=train.shape, num_classes=len(names), latent_dim=16, width=32,
                                   beta=1.0, prior="standard"),
}
for name, model in models.items():
    h = cvaelib.fit(model, train, val, epochs=EPOCHS, device=env.device, progress=False,
                    checkpoint=env.work_dir / f"04_{name.lower()}_fashion.pt", resume=True,
                    meta={"dataset": "fashion-mnist", "class_names": names})
    model.eval()
    print(f"{name:4s}: {h.epochs} epochs, val loss {h.val[-1]['loss']:.1f}" if h.val else name)

# %% [markdown]
# ## 2. What does z hold? Look, then measure
# We encode the same test images with each model (the posterior **mean** for the VAEs: the noise is not part of the
# code) and draw the codes in 2-D with t-SNE, coloured by class.
#
# t-SNE keeps *neighbourhoods*: points close in 2-D were close in 16-D. It does not keep distances between clusters
# or their sizes, and it can draw clusters out of noise. So each panel also carries two numbers computed **in the
# 16-D latent space**, not in the picture:
# - **k-NN accuracy**: how often the 5 nearest codes of an image mostly belong to its class (chance: 10 %);
# - **silhouette**: from −1 to 1, how much nearer a code is to its own class than to the next class.

# %%
sub = cvaelib.subset(test, N_TSNE, seed=1)
x, y = sub.float_images(), sub.labels
results = latent.compare_latents(models, x, y, method="tsne", seed=0)
show(latent.plot_latents(results, y, names, method="tsne"))
for name, r in results.items():
    print(f"{name:4s}: k-NN accuracy {r['knn']:.1%}, silhouette {r['silhouette']:+.2f}")

# %% [markdown]
# The AE and the VAE sort garments by class: nothing else tells their decoder *what* to draw, so the code must.
# The CVAE's decoder is *told* the class, so its code is free to describe what the class does not say — the cut,
# the thickness, the brightness — and the class can no longer be read off z as easily: its k-NN accuracy drops
# and its classes stop forming clusters (silhouette at or below zero). Some class information stays, because
# "style" still differs between classes: a bag's shape says "bag" whatever the label. (The article in the kit's
# sources shows the same two t-SNE pictures for a VAE and a CVAE.)
#
# It happens *during* training, and you can watch it: at first the CVAE's codes still sort by class (the encoder
# sees the image, and the decoder has not yet learned to rely on c); once the decoder uses the condition, the KL
# term squeezes the class out of z. In one measured run (MNIST, 4,000 images, z of 8 numbers) the CVAE's k-NN
# accuracy fell from 95 % after one epoch to 48 % after six, while the VAE's rose from 35 % to 81 %. With `SMOKE=1`
# (one short epoch) you see the *start* of that story, not its end.
#
# PCA is the quick alternative: linear, instant, deterministic, but classes overlap more in two linear directions.

# %%
pca = {name: {**r, "xy": latent.embed_2d(r["z"], "pca")} for name, r in results.items()}
show(latent.plot_latents(pca, y, names, method="pca"))

# %% [markdown]
# t-SNE here uses `latent.tsne_2d`: openTSNE with settings measured in `benchmarks/tsne.py` — 350 instead of
# 1,000 iterations, PCA initialisation, exact neighbours, one thread — several times faster than scikit-learn's
# defaults for 5,000 codes with an equally trustworthy embedding (neighbourhoods kept to within 0.002).

# %%
show_source(latent.tsne_2d)

# %% [markdown]
# ## 3. Walking from one image to another
# Encode two images, walk between their codes, decode every step. A straight line (**lerp**) between two typical
# codes of a N(0, I) prior passes *inside* the shell where codes live (in 16-D, most of the prior's mass sits near
# radius √16 = 4; the midpoint of two such codes is about 4/√2 ≈ 2.8 from the centre). The great-circle path
# (**slerp**) keeps the radius.

# %%
vae = models["VAE"]
i, j = int((y == 7).nonzero()[0]), int((y == 9).nonzero()[0])  # a sneaker and an ankle boot
rows = [walk.interpolate_images(vae, x[i], x[j], steps=8, method=m) for m in ("lerp", "slerp")]
show(cvaelib.show_grid(torch.cat(rows), ncols=8, row_labels=["lerp", "slerp"], title="sneaker → ankle boot (VAE)"))
z = walk.encode(vae, x[[i, j]])
line, arc = walk.lerp(z[0], z[1], 8), walk.slerp(z[0], z[1], 8)
print("norm along lerp: ", [round(float(v), 2) for v in line.norm(dim=1)])
print("norm along slerp:", [round(float(v), 2) for v in arc.norm(dim=1)])

# %% [markdown]
# ## 4. Class → class with a fixed z (CVAE)
# Keep the style code fixed and slide the *condition* from one class to another (the class embedding is mixed
# linearly). The end points are ordinary samples; the middle shows what the decoder makes of a class it never saw.

# %%
cvae = models["CVAE"]
z0 = torch.zeros(cvae.latent_dim)  # the centre of the prior: the "average" style
pairs = [(0, 3), (7, 9), (2, 4)]  # T-shirt → dress, sneaker → ankle boot, pullover → coat
frames = torch.cat([walk.interpolate_classes(cvae, z0, a, b, steps=8) for a, b in pairs])
show(cvaelib.show_grid(frames, ncols=8, row_labels=[f"{names[a]} → {names[b]}" for a, b in pairs]))

# %% [markdown]
# ## 5. One dimension at a time
# A traversal sweeps one coordinate of z from −3 to 3 (prior standard deviations) and keeps the others fixed.
# Some dimensions change something you can name (width, brightness, heel height); others change little — the KL
# term switched them off.

# %%
z_img = walk.encode(vae, x[i:i + 1])[0]
show(cvaelib.show_grid(walk.traverse(vae, z_img, dims=range(6), steps=9), ncols=9,
                       row_labels=[f"z[{d}]" for d in range(6)], title="VAE: sweep one dimension of a sneaker's code"))

# %% [markdown]
# ## 6. Style transfer: same handwriting, another digit
# Encode a handwritten digit **with its own class**, then decode the same z with every other class. Because the
# CVAE's z holds the style, the slant and stroke width survive while the digit changes. Digits show it best.

# %%
mnist = cvaelib.load_dataset("mnist", env.data_root, "train", download=env.download)
mnist_test = cvaelib.load_dataset("mnist", env.data_root, "test", download=env.download)
if env.smoke:
    mnist, mnist_test = cvaelib.subset(mnist, 2000), cvaelib.subset(mnist_test, 200)
digit_cvae = cvaelib.ConditionalVAE(image_shape=mnist.shape, num_classes=10, latent_dim=16, beta=1.0,
                                    prior="standard")
cvaelib.fit(digit_cvae, mnist, epochs=max(1, EPOCHS // 2), device=env.device, progress=False,
            checkpoint=env.work_dir / "04_cvae_mnist.pt", resume=True,
            meta={"dataset": "mnist", "class_names": mnist.class_names})
digit_cvae.eval()
pick = torch.tensor([int((mnist_test.labels == d).nonzero()[k]) for d, k in ((2, 0), (4, 1), (7, 2), (9, 3))])
xs, cs = mnist_test.float_images()[pick], mnist_test.labels[pick]
grid = walk.style_transfer(digit_cvae, xs, cs)  # [4 images, 10 classes, 1, 28, 28]
show(cvaelib.show_grid(torch.cat([xs[:, None], grid], 1).flatten(0, 1), ncols=11,
                       titles=["input"] + [str(k) for k in range(10)] + [""] * 33))

# %% [markdown]
# ## 7. Text → class
# The article in the kit's sources turns short text into a Fashion-MNIST class with regular expressions and a few
# synonyms (coat/jacket). `parse_prompt` does the same for every class, with plurals, punctuation, digits and number
# words, several classes per prompt — and the longest phrase wins, so "T-shirt" is not a "shirt".

# %%
for text in ["a pair of running shoes", "Jackets & jeans", "a T-shirt, not a dress shirt", "HANDBAGS!"]:
    print(describe_prompt(text, "fashion-mnist"))
print(describe_prompt("the digit 7 and a three", "mnist"))
try:
    parse_prompt("a pair of sneekers", "fashion-mnist")
except cvaelib.PromptError as err:
    print("PromptError:", err)

# %%
images, ids = samples_for_prompt(cvae, "sneakers, a bag and a dress", n=8, seed=0, class_names=names)
show(cvaelib.show_grid(images, ncols=8, row_labels=[names[k] for k in ids]))

# %% [markdown]
# The command line does the same: `python -m cvaelib parse-prompt --dataset fashion-mnist "a pair of running shoes"`
# prints `{"prompt": ..., "classes": [7], "names": ["Sneaker"]}`, and `python -m cvaelib generate --checkpoint RUN
# --prompt "sneakers and a bag" --out grid.png` draws them.
#
# ## 8. Play with it
# Three panels built from core widgets (they work on Colab's ipywidgets 7.7 and on 8.x). Each one calls a plain,
# tested function and redraws one output area. Type a prompt and press **Generate**:

# %%
prompt_panel(cvae, prompt="two sneakers and a bag", n=6)

# %% [markdown]
# Pick a class and move the first six coordinates of z (the other ten stay at 0, the prior's centre):

# %%
explorer_panel(cvae, dims=6)

# %% [markdown]
# Slide from a sneaker's code to an ankle boot's code (try both paths):

# %%
interpolation_panel(vae, x[i], x[j])

# %% [markdown]
# ## Exercises
# **1.** Retrain the CVAE with `beta=4` and recompute its k-NN accuracy. Does a stronger KL push make z hold *less*
# about the class? Fill in `knn_beta4` below.

# %%
# Exercise: retrain the CVAE with beta=4 and measure the k-NN accuracy of its codes
# YOUR CODE HERE
raise NotImplementedError("Exercise 1: retrain the CVAE with beta=4 and measure the k-NN accuracy of its codes")
print(f"CVAE beta=1: {results['CVAE']['knn']:.1%}   beta=4: {knn_beta4:.1%}")

# %%
from cvaelib.teach import check_value

check_value(knn_beta4, 0.0, 1.0, "knn_beta4", hint="latent.knn_accuracy(latent.latents(strong, x, y), y) is a "
                                                   "fraction between 0 and 1")

# %% [markdown]
# **2.** Write `midpoint_norms(z0, z1)` that returns the norms of the lerp and slerp midpoints of two codes, and
# check on random N(0, I) codes in 64-D that lerp's midpoint is about 1/√2 as long.

# %%
def midpoint_norms(z0, z1):
    # Exercise: the norms of the lerp and slerp midpoints
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: the norms of the lerp and slerp midpoints")


# %%
from cvaelib.teach import check_midpoint_norms

check_midpoint_norms(midpoint_norms)

# %% [markdown]
# **3.** A prompt rule that gets "shirt" right. Write the rule for one class by hand: `asks_for_shirt(text)` is
# True when the prompt asks for a Shirt (class 6) — "a shirt", "two Shirts!", "a dress shirt" — and False for "a T-shirt" (class 0), "a sweatshirt" (a pullover)
# or "shirtless". Normalise the text (lower case, punctuation → spaces), let the longer phrase "t shirt" win, and
# match whole words with `\b`. The check compares your rule with `parse_prompt` on a dozen prompts.

# %%
import re


def asks_for_shirt(text):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 3: A prompt rule that gets \"shirt\" right")


# %%
from cvaelib.teach import check_prompt_rule

check_prompt_rule(asks_for_shirt)

# %% [markdown]
# **Takeaway:** a picture of a latent space is a hint, a number computed in the latent space is evidence; a CVAE's
# z holds style because the class arrives separately, which is exactly what makes class interpolation, style
# transfer and a prompt box possible.
#
# ## What's next
# [05 · Text to image with CLIP](05_clip_cvae.ipynb): replace the class id by a CLIP embedding, so any sentence
# can be a condition.
