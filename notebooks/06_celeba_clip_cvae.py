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
# # 06 · Faces from words: a residual CLIP-CVAE on CelebA
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/06_celeba_clip_cvae.ipynb)
#
# > **Instructor version: solutions included.** Students work in the student version (the Colab badge opens it; `python -m cvaelib.teach student` regenerates it).
#
# **You will learn**
# - how a residual encoder/decoder scales the CVAE of lessons 03–05 to 64×64 colour faces, what the sources' loss
#   weights mean in the kit's units, and where the condition should enter (six injection points, one of them
#   yours, compared at the same budget — plus zoom vs wide crops and a perceptual loss on vs off);
# - how one CLIP-conditioned model does text → face, face → face with a new condition, attribute edits with a
#   strength factor, and interpolation between two texts;
# - how conditioning on CelebA's 40 human-made attributes compares with conditioning on CLIP embeddings.
#
# **Prerequisites:** lesson 05 (CLIP-conditioned CVAE on digits).
# **Runtime:** this lesson needs a GPU for a real run: on a Colab T4 about 15 min to prepare CelebA (both crops) and
# embed it with CLIP ViT-B/32, then about 50 min of training (6 injection variants, the wide crop and the perceptual
# variant × 2 epochs on 50,000 faces, the chosen model 8 epochs, the attribute CVAE) — estimates, not yet measured
# on a T4. **On a CPU it runs only in `SMOKE=1` mode (under a minute)**: a *synthetic* CelebA of drawn faces, 32×32
# pixels, two epochs, and a small *random* CLIP whose embeddings mean nothing. SMOKE pictures show that every step
# runs; they cannot show faces that follow words. What a full run is expected to show, from the kit's sources: the
# condition added mid-encoder (their RES_VAE2, our `down3`) was their best variant; zoom crops gave better faces than
# wide ones; text prompts such as "wearing glasses" or "smiling" changed the faces accordingly — with identity and
# pose moving along.
#
# Data: CelebA (Liu, Luo, Wang & Tang 2015, "Deep Learning Face Attributes in the Wild",
# https://arxiv.org/abs/1411.7766; https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html; for non-commercial research
# only). Papers: CLIP (Radford et al. 2021, https://arxiv.org/abs/2103.00020); VAE (Kingma & Welling 2014,
# https://arxiv.org/abs/1312.6114); residual networks (He et al. 2016, https://arxiv.org/abs/1512.03385);
# perceptual loss (Johnson et al. 2016, https://arxiv.org/abs/1603.08155; Hou et al. 2017,
# https://arxiv.org/abs/1610.00291); LAFITE (Zhou et al. 2022, https://arxiv.org/abs/2111.13792).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import cvaelib
from cvaelib.notebook import setup, show, show_source
from cvaelib.teach import check_prediction

env = setup(seed=0)  # setup(drive=True) on Colab keeps prepared data, embeddings and checkpoints on Google Drive
# The data-prep scripts live next to the package in the repository (data_prep/); a pip install has only cvaelib.
REPO = Path(cvaelib.__file__).resolve().parents[1]
if not (REPO / "data_prep").is_dir():
    if not Path("kit-src").is_dir():
        subprocess.run(["git", "clone", "-q", "--depth", "1",
                        "https://github.com/cvae-course-kit/cvae-course-kit.git", "kit-src"], check=True)
    REPO = Path("kit-src").resolve()
sys.path.insert(0, str(REPO))

# Where CelebA is (see README "Getting CelebA onto Colab"): the official folder, the Kaggle folder or the zip.
CELEBA_SRC = Path("/content/celeba") if env.in_colab else Path("data/celeba")
LIMIT = None if env.smoke else 50_000    # training faces (None = all of the split; 162,770 in real CelebA)
SIZE = 32 if env.smoke else 64           # SMOKE trains tiny models on 32x32 so CI takes seconds
WIDTH = 8 if env.smoke else 32           # channels of the first residual block
LATENT = 128                             # z, as in the sources (they suggest 512 for long runs)
EPOCHS = 2                               # per compared variant: the equal budget
BEST_EPOCHS = 2 if env.smoke else 8      # for the model used in the generation sections
BATCH = 32 if env.smoke else 128         # SMOKE: a few steps per epoch on ~100 faces
USE_REAL_CLIP = not env.smoke            # False: a small random CLIP (offline; its embeddings mean nothing)

# %% [markdown]
# ## 1. CelebA, prepared once — two crops
# CelebA has 202,599 aligned 178×218 celebrity photos, each with 40 yes/no attributes ("Smiling", "Eyeglasses",
# "Male", ...) and an official train/val/test split.  Decoding 200k JPEGs for every run would take longer than the
# training, so `data_prep.celeba` decodes once and writes uint8 shards of two crops: **zoom** (the face only — the
# CelebA project among the kit's sources found it gives better faces) and **wide** (hair, neck and background too).
# It resumes where it stopped and checks every shard, so a Colab disconnect costs nothing.
#
# In `SMOKE` mode the notebook writes a *synthetic* CelebA — drawn faces in the real file layout with real
# attribute files — so the very same code path runs in CI without the real data.

# %%
from cvaelib.data.shards import load_prepared, read_manifest

prepared = env.work_dir / ("celeba_smoke" if env.smoke else "celeba_prepared")
if env.smoke:
    import importlib.util

    spec = importlib.util.spec_from_file_location("celeba_fixture", REPO / "tests" / "fixtures" / "celeba_fixture.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    CELEBA_SRC = fixture.make_celeba_fixture(env.work_dir / "celeba_smoke_src", n=160, layout="official")

from data_prep.celeba import prepare_celeba

have = read_manifest(prepared)["config"]["variants"] if (prepared / "manifest.json").exists() else []
if env.smoke or not {"zoom", "wide"} <= set(have):
    if not CELEBA_SRC.exists():
        raise cvaelib.DataError(f"CelebA not found at {CELEBA_SRC}; see the README section 'Getting CelebA onto "
                                f"Colab' (or run with SMOKE=1 for the synthetic sample)")
    prepare_celeba(CELEBA_SRC, prepared, sizes=(SIZE,), variants=("zoom", "wide"), workers=2 if env.smoke else None)
train = load_prepared(prepared, "train", size=SIZE, variant="zoom", limit=LIMIT)
val = load_prepared(prepared, "val", size=SIZE, variant="zoom", limit=None if env.smoke else 2000)
names = train.class_names
print(f"train {len(train)}, val {len(val)} faces of shape {train.shape}; {len(names)} attributes")


def attr_title(row):
    on = [names[i] for i in row.nonzero().flatten().tolist()]
    return ", ".join(n.replace("_", " ") for n in on if n in ("Male", "Smiling", "Eyeglasses", "Blond_Hair",
                                                               "Wearing_Hat", "Goatee"))


show(cvaelib.show_grid(train.float_images()[:8], titles=[attr_title(r) for r in train.labels[:8]], ncols=4))

# %% [markdown]
# ## 2. CLIP image embeddings, computed once
# As in lesson 05 the CVAE is trained **language-free**: the condition of each face is CLIP's embedding of that
# face.  Embedding 160k images with ViT-B/32 takes a few minutes on a T4, so it is cached next to the prepared data
# (the cache checks the CLIP model and the images and rebuilds itself if either changes).

# %%
from cvaelib.clip import load_clip
from cvaelib.conditioning import with_clip_condition

if USE_REAL_CLIP:
    clip_name = "ViT-B/32"  # downloads ~340 MB once
else:
    from cvaelib.clip.synthetic import save_random_clip

    clip_name = str(env.work_dir / "random_clip_small.pt")
    save_random_clip(clip_name, shape="tiny")
encoder = load_clip(clip_name, device=env.device)
clip_train = with_clip_condition(train, encoder, prepared / "clip_cache" / f"train_zoom_{SIZE}_{LIMIT}")
clip_val = with_clip_condition(val, encoder, prepared / "clip_cache" / f"val_zoom_{SIZE}")
print(f"condition: {clip_train.conditions.shape[1]}-d CLIP embeddings; the attributes stay in .labels")
env.smoke_banner("nothing measured yet: the kit's full CelebA run needs a GPU and has not been run on one; the "
                 "sources report their mid-encoder injection (down3 here) best and zoom crops better than wide")

# %% [markdown]
# ## 3. The residual VAE
# Each down-sampling block adds a cheap path (average-pool, one convolution) to a deeper one (convolution,
# batch-norm, activation, pool, convolution, batch-norm): the residual shape that lets deep networks train.

# %%
from cvaelib.models import AttributeCVAE, ResidualVAE
from cvaelib.models.resvae import ResDown

show_source(ResDown)

# %% [markdown]
# Five blocks take 64×64 down to 2×2 (64 → 32 → 16 → 8 → 4 → 2; four from 32×32 in SMOKE mode); a 2×2 convolution
# gives the mean and log-variance of a 128-d code, and up-sampling blocks go back.  The decoder always receives
# $[z, c]$.
#
# **The loss, in the kit's units.** The sources trained with `BCE(mean) + 0.01 · KL(mean)`: each term *averaged*,
# the BCE over the $B$ images and $D_x = C\cdot H\cdot W$ pixel values, the KL over the $B$ images and $D_z$ latent
# dimensions. The kit (lessons 02–05) writes the ELBO per image as *sums*: $\frac1B\sum_b\big[\sum_i \mathrm{BCE}_{b,i}
# + \beta \sum_j \mathrm{KL}_{b,j}\big]$. Are they the same recipe?

# %% [markdown]
# **Predict first.** For a 64×64 colour face and a 128-d latent, which β in the kit's per-image sums gives the
# sources' balance? (a) 0.01, the same number; (b) about 1; (c) about 0.0001. Set `prediction` to your letter and
# run the check; the cells after it show who was right.

# %%
# Exercise: predict — the sources' 0.01 in the kit's units
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("06.beta", prediction)

# %% [markdown]
# Multiply the sources' loss by the constant $D_x$ (a constant factor does not move the minimum, and Adam's steps
# do not depend on the loss scale):
#
# $$ D_x\Big[\tfrac{1}{B D_x}\sum_{b,i}\mathrm{BCE}_{b,i} + w\,\tfrac{1}{B D_z}\sum_{b,j}\mathrm{KL}_{b,j}\Big]
#    = \tfrac1B\sum_b\Big[\sum_i \mathrm{BCE}_{b,i} + \underbrace{w\,\tfrac{D_x}{D_z}}_{\beta}\sum_j
#    \mathrm{KL}_{b,j}\Big]. $$
#
# So $\beta = w\,D_x/D_z$: the same weight $w$ means a different balance whenever the image or the latent changes
# size — the sources' suggested $D_z = 512$ weakens the KL four times.
#
# ### Exercise 2 · The sources' KL weight as a β
# Write `source_beta(kl_weight, image_shape, latent_dim)`: the β of the kit's per-image sums that reproduces
# `BCE(mean) + kl_weight · KL(mean)` for images of shape `(C, H, W)` and a `latent_dim`-d code. Every model of this
# lesson is trained with your β.

# %%
def source_beta(kl_weight, image_shape, latent_dim):
    ### BEGIN SOLUTION
    c, h, w = image_shape
    return kl_weight * c * h * w / latent_dim
    ### END SOLUTION


# %%
from cvaelib.teach import check_source_beta

check_source_beta(source_beta)

# %%
BETA = source_beta(0.01, train.shape, LATENT)
print(f"the sources' 0.01 at {train.shape} with z = {LATENT} is beta = {BETA:.2f} in the kit's units")

# %% [markdown]
# ## 4. Where does the condition enter the encoder?
# The CelebA project among the kit's sources compared five variants; the kit names them by where $c$ enters:
#
# | `injection` | the encoder sees the CLIP embedding...                      | sources' name |
# |---|---|---|
# | `none`      | never (an unconditional VAE; the decoder gets z only)       | RES_VAE0 |
# | `input`     | as extra input channels (a projection, broadcast over pixels) | RES_VAE1 |
# | `down3`     | projected and added to the feature maps after block 3       | RES_VAE2 (their best) |
# | `down4`     | projected and added after block 4                           | RES_VAE3 |
# | `decoder`   | not at all — only the decoder gets it                       | RES_VAE4 |
#
# Why should it matter at all? The decoder always gets $c$; what changes is whether the *encoder* knows what the
# decoder will be told, and so can leave it out of z (a lower KL for the same reconstruction). But here $c$ is
# CLIP's embedding of the very image the encoder reads.

# %% [markdown]
# **Predict first.** Can the `decoder` variant's encoder, which never sees c, still leave out of z what c says? (a)
# no: only an encoder that is handed c can leave out of z what c says; (b) in principle yes: c = CLIP(x) is computed
# from the same image, so the encoder can learn to see it too; being handed c only makes it easier; (c) yes, and it
# always does as well as the other variants. Set `prediction` to your letter and run the check; the cells after it
# show who was right.

# %%
# Exercise: predict — can an encoder that never sees c leave it out of z?
### BEGIN SOLUTION
prediction = "b"
### END SOLUTION

# %%
check_prediction("06.encoder_sees", prediction)

# %% [markdown]
# ### Exercise 4 · Inject the condition after any block
# Write `encode_at(model, x, c, point)` for a `ResidualVAE`-shaped `model`: run the down-sampling blocks
# `model.down` in order; right after block number `point` (counted from 1) add the condition, projected by
# `model.cond_in` to that block's channels and broadcast over its height and width; return the flattened mean and
# log-variance from `model.mu` and `model.logvar`. The lesson then uses it to add a sixth variant the library does
# not have: the condition after block **2** (16×16 at 64 pixels — earlier than the sources' best).

# %%
def encode_at(model, x, c, point):
    ### BEGIN SOLUTION
    h = x
    for i, block in enumerate(model.down, start=1):
        h = block(h)
        if i == point:
            h = h + model.cond_in(c.to(h.dtype))[:, :, None, None]
    return model.mu(h).flatten(1), model.logvar(h).flatten(1)
    ### END SOLUTION


# %%
from cvaelib.teach import check_encode_at

check_encode_at(encode_at)

# %% [markdown]
# How the kit writes it — one method covers the input channels and the two block positions:

# %%
show_source(ResidualVAE.encode)


# %%
class InjectAfter(ResidualVAE):
    """A ResidualVAE whose encoder adds the condition after down-block ``point``, with the lesson's ``encode_at``."""

    name = "resvae-lesson06"  # not in the library's registry: load it by rebuilding this class, not load_model

    def __init__(self, point, **config):
        super().__init__(injection="down3", **config)  # a conditional layout; the projection is replaced below
        self.config["point"] = self.point = point
        # block `point` outputs as many channels as its skip convolution (module index 1 after the pooling)
        self.cond_in = nn.Linear(self.condition_dim, self.down[point - 1].skip[1].out_channels)

    def encode(self, x, c=None):
        self.check_condition(c, x.shape[0])
        return encode_at(self, x, c, self.point)


# %% [markdown]
# ## 5. Compare the injection points at the same budget
# Same data, epochs, batch size, learning rate, seed and your β for six models. Three numbers on the validation
# faces: the **reconstruction** term (nats per face: how much of a face the model keeps), the **KL** (nats of
# information flowing through z), and the **SSIM** of reconstructions (local structure; 1 = identical). A condition
# the encoder can use lets z carry less: a lower KL at a similar reconstruction is the sign that it is *used*.
# Checkpoints are kept: re-running the cell loads them.

# %%
common = dict(image_shape=train.shape, latent_dim=LATENT, width=WIDTH, beta=BETA, condition_dim=clip_train.conditions.shape[1],
              condition_noise=0.05, clip=clip_name)
variants = {"none": lambda: ResidualVAE(injection="none", **common),
            "input": lambda: ResidualVAE(injection="input", **common),
            "down2 (yours)": lambda: InjectAfter(2, **common),
            "down3": lambda: ResidualVAE(injection="down3", **common),
            "down4": lambda: ResidualVAE(injection="down4", **common),
            "decoder": lambda: ResidualVAE(injection="decoder", **common)}
from cvaelib.metrics import ssim

x_val = val.float_images()


def measure(model, data_val):
    """Validation terms and SSIM of the reconstructions (each face with its own condition)."""
    terms = cvaelib.evaluate(model, data_val, device=env.device)
    c = None if model.condition is None else data_val.conditions.to(env.device)
    rec = model.reconstruct(x_val.to(env.device), c).cpu()
    return {"recon": terms["recon"], "kl": terms["kl"], "ssim": float(ssim(rec, x_val))}, rec


results, models, recons = {}, {}, {}
for label, build in variants.items():
    torch.manual_seed(0)
    model = build()
    conditional = model.condition is not None
    cvaelib.fit(model, clip_train if conditional else train, clip_val if conditional else val, epochs=EPOCHS,
                batch_size=BATCH, lr=1e-3, device=env.device, checkpoint=env.checkpoint(f"06_inject_{label.split()[0]}"),
                resume=True)
    models[label] = model
    results[label], recons[label] = measure(model, clip_val if conditional else val)
print(f"{'injection':14s} {'val recon':>10s} {'val KL':>8s} {'SSIM':>6s}   (nats per face; {EPOCHS} epoch(s) each)")
for label, r in results.items():
    print(f"{label:14s} {r['recon']:10.1f} {r['kl']:8.1f} {r['ssim']:6.3f}")

fig, axes = plt.subplots(1, 3, figsize=(12, 3))
for ax, key, what in zip(axes, ("recon", "kl", "ssim"), ("reconstruction (nats, lower is better)",
                                                        "KL (nats through z)", "SSIM (higher is better)")):
    values = [results[k][key] for k in results]
    ax.bar(range(len(values)), values, color=["grey"] + ["C0"] * (len(values) - 1))
    ax.set_xticks(range(len(values)), [k.split()[0] for k in results], rotation=30)
    ax.set_title(what, fontsize=9)
    low, high = min(values), max(values)
    ax.set_ylim(low - 0.2 * (high - low + 1e-9), high + 0.2 * (high - low + 1e-9))
fig.suptitle("condition-injection points at the same budget (grey: unconditional baseline)")
fig.tight_layout()
show(fig)

# %% [markdown]
# Samples from each model, conditioned on the CLIP embeddings of the same eight validation faces (`none` ignores
# them: its faces are random).  A model that uses its condition draws faces *like* the ones in the first row.

# %%
rows = [x_val[:8]]
for label, model in models.items():
    c = None if model.condition is None else clip_val.conditions[:8].to(env.device)
    rows.append(model.sample(8, c, generator=torch.Generator().manual_seed(0)).cpu())
show(cvaelib.show_grid(torch.cat(rows), ncols=8, row_labels=["real"] + [k.split()[0] for k in models],
                       title="conditioned on the real faces' CLIP embeddings"))

# %% [markdown]
# The sources found `down3` best: injected at 8×8 the condition still shapes mid-level features, while at the
# input it competes with 12,288 pixel values and at `decoder` the encoder cannot account for it at all. Read your
# table: does the KL order follow the depth of the injection, and where does your `down2` land? (In SMOKE mode the
# differences are noise: two epochs on about a hundred drawn faces.)
#
# ## 6. Zoom or wide crop?
# The same `down3` model and budget on the wide crop — more of the picture is hair, neck and background, so each
# face gets fewer pixels.

# %%
wide = {split: load_prepared(prepared, split, size=SIZE, variant="wide", limit=LIMIT if split == "train" else
                             (None if env.smoke else 2000)) for split in ("train", "val")}
clip_wide = {split: with_clip_condition(d, encoder, prepared / "clip_cache" / f"{split}_wide_{SIZE}_{LIMIT}")
             for split, d in wide.items()}
torch.manual_seed(0)
wide_model = ResidualVAE(injection="down3", **common)
cvaelib.fit(wide_model, clip_wide["train"], clip_wide["val"], epochs=EPOCHS, batch_size=BATCH, lr=1e-3,
            device=env.device, checkpoint=env.checkpoint("06_wide_down3"), resume=True)
x_wide = wide["val"].float_images()
rec_wide = wide_model.reconstruct(x_wide.to(env.device), clip_wide["val"].conditions.to(env.device)).cpu()
wide_terms = cvaelib.evaluate(wide_model, clip_wide["val"], device=env.device)
for label, r in (("zoom", results["down3"]), ("wide", {**wide_terms, "ssim": float(ssim(rec_wide, x_wide))})):
    print(f"{label:5s} crop: val recon {r['recon']:8.1f}  KL {r['kl']:6.1f}  SSIM {r['ssim']:.3f}")
show(cvaelib.show_grid(torch.cat([x_val[:6], recons["down3"][:6], x_wide[:6], rec_wide[:6]]), ncols=6,
                       row_labels=["zoom", "recon", "wide", "recon"], title="the same faces, two crops"))

# %% [markdown]
# Both crops have the same number of pixels, so the numbers compare how hard each picture is to encode: the wide
# crop spends pixels on hair and background and draws the face itself smaller. The sources chose zoom for their best
# model.
#
# ## 7. A perceptual loss: on vs off
# A per-pixel loss is satisfied by a blurry average of all plausible faces. The sources added a **VGG19 feature
# loss**: the mean squared difference between the activations an ImageNet-trained VGG19 computes for the
# reconstruction and for the real face (Johnson et al. 2016; Hou et al. 2017) — features respond to edges and
# textures, so their difference penalises lost detail. `perceptual=1` weighs it as the sources did. It needs the
# ImageNet weights of VGG19 (a one-off ~550 MB download, automatic on Colab).

# %%
from cvaelib.perceptual import vgg19_weights_file

vgg_file = vgg19_weights_file()
if vgg_file.is_file() or not env.smoke:  # full runs download the weights (Colab); SMOKE never downloads
    vgg_weights, vgg_label = "imagenet", "VGG19 (ImageNet)"
else:
    print(f"VGG19 ImageNet weights are missing ({vgg_file} not found; offline, no download in SMOKE mode): the "
          f"perceptual model below uses a RANDOM VGG19 - it runs the same code path, but is not a perceptual loss.")
    vgg_weights, vgg_label = None, "random VGG19 (weights missing)"
torch.manual_seed(0)
perc_model = ResidualVAE(injection="down3", perceptual=1.0, perceptual_weights=vgg_weights, **common)
t0 = time.perf_counter()
perc_history = cvaelib.fit(perc_model, clip_train, clip_val, epochs=EPOCHS, batch_size=BATCH, lr=1e-3,
                           device=env.device, checkpoint=env.checkpoint(f"06_perceptual_{vgg_weights}"), resume=True)
perc_terms, rec_perc = measure(perc_model, clip_val)
print(f"perceptual off: val recon {results['down3']['recon']:8.1f}  SSIM {results['down3']['ssim']:.3f}")
print(f"perceptual on ({vgg_label}): val recon {perc_terms['recon']:8.1f}  SSIM {perc_terms['ssim']:.3f}  "
      f"({perc_history.seconds:.1f} s of training for {perc_history.epochs} epoch(s))")
show(cvaelib.show_grid(torch.cat([x_val[:6], recons["down3"][:6], rec_perc[:6]]), ncols=6,
                       row_labels=["real", "BCE only", "+ VGG"], title=f"reconstructions; perceptual: {vgg_label}"))

# %% [markdown]
# Expect the pixel term (BCE) to get slightly *worse* with the perceptual loss — the model spends capacity on what
# VGG features reward — while edges look sharper; SSIM sits in between. The price is compute: VGG19 runs on every
# reconstruction and every real face.
#
# ## 8. The chosen model, trained longer

# %%
BEST = "down3"
torch.manual_seed(0)
model = ResidualVAE(injection=BEST, **common)
history = cvaelib.fit(model, clip_train, clip_val, epochs=BEST_EPOCHS, batch_size=BATCH, device=env.device,
                      checkpoint=env.checkpoint("06_resvae_best"), resume=True)
show(cvaelib.plot_history(history))

# %% [markdown]
# ## 9. Text → face
# The model only ever saw *image* embeddings.  A text embedding sits elsewhere on the sphere (the modality gap of
# lesson 05), so the **retrieval bridge** conditions each sample on one of the training faces' embeddings that
# are nearest to the text (the model kept a bank of them in its checkpoint).  With `SMOKE=1` the random CLIP
# makes these pictures meaningless; with ViT-B/32 on real CelebA they follow the words.

# %%
from cvaelib.conditioning.bridge import text_anchor
from cvaelib.clip_generate import generate_from_images, generate_from_text, interpolate, manipulate

prompts = ["a smiling woman with blond hair", "a man with a beard and glasses", "an old man wearing a hat",
           "a young woman with red lipstick"]
show(cvaelib.show_grid(torch.cat([generate_from_text(model, encoder, p, 8, seed=0) for p in prompts]), ncols=8,
                       row_labels=[p[:24] for p in prompts], title="text -> face (retrieval bridge)"))

# %% [markdown]
# **How good are these faces, in numbers?** FID compares the statistics of generated and real faces in
# Inception-v3 features (Heusel et al. 2017; lesson 07 derives it). It is only meaningful with thousands of images
# per set — below 2,048 the kit prints a warning, and every FID shows its sample counts. Its weights download once
# (on Colab); offline the cell says so instead of failing.

# %%
from cvaelib.errors import KitError
from cvaelib.metrics import inception_fid

n_fid = min(len(val), 64 if env.smoke else 2048)
per_prompt = -(-n_fid // len(prompts))
fakes = torch.cat([generate_from_text(model, encoder, p, per_prompt, seed=0) for p in prompts])[:n_fid]
try:  # in SMOKE mode never download (CI is offline); on Colab the weights download once
    print(inception_fid(fakes, x_val[:n_fid], device=env.device, allow_download=not env.smoke))
except KitError as err:  # offline without the Inception weights
    print(f"FID skipped: {err}")

# %% [markdown]
# ## 10. Face → face: a new condition for a face's own code
# Two different things are called "image to image". Conditioning on a face's embedding and drawing *new* z gives
# "more faces like this one". Keeping the face's *own* code z — its posterior mean, encoded with the condition it
# really has — and decoding it with another condition keeps what z holds (pose, lighting, layout) and changes what
# the condition says.
#
# ### Exercise 5 · Re-decode a face with another condition
# `x` `[N, 3, H, W]` faces, `c_image` `[N, D]` their own CLIP embeddings, `c_new` `[N, D]` the conditions to decode
# with. Return images in [0, 1].

# %%
def redecode(model, x, c_image, c_new):
    ### BEGIN SOLUTION
    z = model.encode(x, c_image)[0]
    return torch.sigmoid(model.decode(z, c_new))
    ### END SOLUTION


# %%
from cvaelib.teach import check_redecode

check_redecode(redecode)

# %%
x = x_val[:6].to(env.device)
c_img = clip_val.conditions[:6].to(env.device)
texts = {"+ glasses": "a person wearing glasses", "+ smile": "a smiling person", "+ blond": "a person with blond hair"}
with torch.no_grad():
    rows = [redecode(model, x, c_img, c_img).cpu()]
    rows += [redecode(model, x, c_img, text_anchor(model, encoder, t).to(env.device).expand(len(x), -1)).cpu()
             for t in texts.values()]
show(cvaelib.show_grid(torch.cat([x.cpu(), generate_from_images(model, encoder, x.cpu(), seed=1)] + rows), ncols=6,
                       row_labels=["input", "new z", "own z"] + list(texts),
                       title="face -> face: new z with the face's condition, or the face's z with a text's"))

# %% [markdown]
# ## 11. Attribute edits with a strength factor
# Decoding a face's z with the text's condition alone (the last rows above) is the strongest edit. A **strength**
# $s \in [0, 1]$ moves the condition only part of the way: $c = \mathrm{normalise}\big((1-s)\,c_\text{image} +
# s\,c_\text{text}\big)$ — the sources' `image_embed_factor` is $f = 1 - s$. One face per row, strength growing to the
# right; your `redecode` draws it.

# %%
strengths = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
target = text_anchor(model, encoder, "a person wearing glasses").to(env.device)
with torch.no_grad():
    grid = torch.stack([redecode(model, x[:4], c_img[:4], F.normalize((1 - s) * c_img[:4] + s * target, dim=-1)).cpu()
                        for s in strengths], dim=1).flatten(0, 1)
show(cvaelib.show_grid(grid, ncols=len(strengths), titles=[f"s={s}" for s in strengths] + [""] * (len(grid) - 6),
                       title="'a person wearing glasses', strength 0 -> 1"))

# %% [markdown]
# The same as a widget: the slider only calls the library's `manipulate` (which mixes with $f = 1 - s$).

# %%
import ipywidgets as widgets
from IPython.display import display

text_box = widgets.Text(value="a person wearing glasses", description="text")
strength = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="strength")
button = widgets.Button(description="Apply")
output = widgets.Output()


def on_click(_):
    with output:
        output.clear_output(wait=True)
        try:
            edited = manipulate(model, encoder, x.cpu(), text_box.value, image_embed_factor=1 - strength.value)
            show(cvaelib.show_grid(torch.cat([x.cpu(), edited]), ncols=6,
                                   title=f"{text_box.value}, strength {strength.value:.2f}"))
        except cvaelib.KitError as exc:
            print(exc)


button.on_click(on_click)
display(widgets.HBox([text_box, strength, button]), output)
on_click(None)

# %% [markdown]
# ## 12. Interpolation between two texts
# Walk from one prompt to another along the great circle between their (bridged) conditions, with one shared z —
# and from one face to another (conditions *and* codes interpolated).

# %%
show(cvaelib.show_grid(torch.cat([interpolate(model, encoder, "a smiling young woman", "a serious old man", 8),
                                  interpolate(model, encoder, "a man with a beard", "a woman wearing a hat", 8),
                                  interpolate(model, encoder, x[0].cpu(), x[1].cpu(), steps=8)]), ncols=8,
                       row_labels=["text", "text", "face"], title="prompt -> prompt; face -> face"))

# %% [markdown]
# ## 13. Attributes vs CLIP: the multi-label CVAE
# CelebA comes with 40 labels per face.  The cVAE report among the kit's sources conditioned a small
# *convolutional* CVAE on this 40-d multi-hot vector (two convolutions, a hidden layer, two transposed
# convolutions); here the same residual VAE as above takes it. Switching one entry while keeping z fixed should
# change that attribute only — and a value above 1 pushes further than the data ever showed.

# %%
torch.manual_seed(0)
attr_model = AttributeCVAE(image_shape=train.shape, latent_dim=LATENT, width=WIDTH, beta=BETA, attribute_names=names)
attr_history = cvaelib.fit(attr_model, train, val, epochs=BEST_EPOCHS, batch_size=BATCH, device=env.device,
                           checkpoint=env.checkpoint("06_attr_cvae"), resume=True)
print(f"attribute CVAE: val recon {attr_history.val[-1]['recon']:.1f}, kl {attr_history.val[-1]['kl']:.1f}")

# %%
ca = val.labels[:6].to(env.device)
with torch.no_grad():
    z = attr_model.encode(x, ca)[0]
    edits = {"as labelled": ca, "+ Eyeglasses": attr_model.toggle(ca, "Eyeglasses", 1),
             "+ Smiling": attr_model.toggle(ca, "Smiling", 1), "flip Male": attr_model.toggle(ca, "Male")}
    attr_rows = [torch.sigmoid(attr_model.decode(z, c.to(env.device))).cpu() for c in edits.values()]
    levels = [0.0, 0.5, 1.0, 1.5, 2.0]
    strength_row = torch.cat([torch.sigmoid(attr_model.decode(z[:1], attr_model.toggle(ca[:1], "Eyeglasses", v)))
                              for v in levels]).cpu()
show(cvaelib.show_grid(torch.cat([x.cpu()] + attr_rows), ncols=6, row_labels=["input"] + list(edits),
                       title="attribute CVAE: one entry switched, z kept"))
show(cvaelib.show_grid(strength_row, ncols=len(levels), titles=[f"Eyeglasses={v}" for v in levels],
                       title="attribute CVAE: the Eyeglasses entry as a strength"))

# %% [markdown]
# **"Flip Male" and a gender text are different operations.** Flipping `Male` changes one input the attribute CVAE
# was trained with, for each face in its own direction (0 → 1 or 1 → 0), and keeps z. A fixed text such as "a person
# of the other gender" is *one* embedding for every face: CLIP does not resolve "other" relative to the face, so it
# is no flip at all. The closest CLIP counterpart gives each face its own target text from its label — "a photo of
# a woman" for a face labelled male, "a photo of a man" otherwise — and even then the edit moves toward whatever
# CLIP associates with that text (hair, make-up, age), bridged through the retrieval bank:

# %%
male = names.index("Male")
targets = ["a photo of a woman" if float(row[male]) > 0.5 else "a photo of a man" for row in val.labels[:6]]
with torch.no_grad():
    c_target = torch.stack([text_anchor(model, encoder, t).to(env.device) for t in targets])
    clip_rows = [redecode(model, x, c_img, F.normalize(0.5 * c_img + 0.5 * c_target, dim=-1)).cpu(),
                 redecode(model, x, c_img, c_target).cpu()]
show(cvaelib.show_grid(torch.cat([x.cpu()] + clip_rows + attr_rows[3:4]), ncols=6,
                       titles=[t.replace("a photo of ", "to ") for t in targets] + [""] * 18,
                       row_labels=["input", "CLIP s=0.5", "CLIP s=1", "attr: flip Male"],
                       title="per-face gender edit: CLIP text (own z) vs the attribute flip"))

# %% [markdown]
# What to notice:
# - **Attributes** are precise and cheap — "Eyeglasses" is one number, with a strength you can dial — but only 40
#   concepts exist, and they are only as good as the annotators (CelebA's labels are noisy; "Attractive" and
#   "Young" are opinions). A decoder that ignores its label (lesson 03) makes every toggle do nothing.
# - **CLIP** knows open vocabulary ("red lipstick", "looking up") and needs no labels at all, but what an embedding
#   encodes is decided by CLIP, not by you: identity, pose and lighting move along with the attribute you asked
#   for, and the text has to cross the modality gap first.
#
# ## 14. Beyond one GPU
# `fit` — and therefore `python -m cvaelib train` — runs under PyTorch's own launcher with DistributedDataParallel,
# one process per GPU, with no code change:
#
# ```
# torchrun --nproc_per_node 2 -m cvaelib train --model resvae --dataset celeba:cvae-work/celeba_prepared \
#          --injection down3 --epochs 10 --out runs/celeba_down3
# python -m cvaelib train --model attr-cvae --dataset celeba:cvae-work/celeba_prepared --epochs 10 --out runs/attr
# ```
#
# **Open questions**
# 1. Rank the six injection points by validation KL and by reconstruction.  Do they agree with the sources?
#    Train `input` and `down3` twice as long: does the ranking hold?
# 2. Retrain the comparison with the sources' suggested z = 512 and *their* weight 0.01 (`source_beta` gives the β):
#    what happens to the KL, and to samples drawn from N(0, I)?
# 3. Which attribute toggles of the multi-label CVAE also change things they should not (e.g. "Male" and hair
#    length)?  Why would the training data cause that?
#
# **Takeaway:** the same conditional VAE scales to colour faces with residual blocks; a loss weight only means
# something together with the sizes it averages over; where the condition enters changes what z must carry; a CLIP
# condition trades the precision of labels for an open vocabulary.
#
# ## What's next
# [07 · Text to image on COCO](07_coco_text_to_image.ipynb) leaves faces for everyday scenes: COCO photos with
# their captions — and shows where a CVAE's blur becomes the limit.
