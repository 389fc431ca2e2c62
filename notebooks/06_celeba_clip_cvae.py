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
# - how a residual encoder/decoder scales the CVAE of lessons 03-05 to 64×64 colour faces, and where the
#   condition should enter it (five injection points, compared on the same data);
# - how one CLIP-conditioned model does text → face, image → image, "put glasses on this face", prompt
#   interpolation and reconstruction;
# - how conditioning on CelebA's 40 human-made attributes compares with conditioning on CLIP embeddings.
#
# **Prerequisites:** lesson 05 (CLIP-conditioned CVAE on digits).
# **Runtime:** on a Colab T4 about 15 min to prepare CelebA and embed it with CLIP, then about 25 min of training
# (5 injection variants × 2 epochs on 50,000 faces, the best one longer, and the attribute CVAE).
# On a CPU use `SMOKE=1` or a small `LIMIT`. `SMOKE=1`: seconds, on a synthetic CelebA.
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

import torch

import cvaelib
from cvaelib.notebook import setup, show, show_source

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
LIMIT = 600 if env.smoke else 50_000     # faces used for the injection comparison (None = all 162,770)
SIZE = 32 if env.smoke else 64           # SMOKE trains tiny models on 32x32 so CI takes seconds
WIDTH = 8 if env.smoke else 32           # channels of the first residual block
EPOCHS = 1 if env.smoke else 2           # per injection variant
BEST_EPOCHS = 1 if env.smoke else 8      # for the model used in the generation sections
USE_REAL_CLIP = not env.smoke            # False: a small random CLIP (offline; its embeddings mean nothing)

# %% [markdown]
# ## 1. CelebA, prepared once
# CelebA has 202,599 aligned 178×218 celebrity photos, each with 40 yes/no attributes ("Smiling", "Eyeglasses",
# "Male", ...) and an official train/val/test split.  Decoding 200k JPEGs for every run would take longer than the
# training, so `data_prep.celeba` decodes once and writes uint8 shards: a **zoom** crop (the face only - the sources
# found it gives better faces) and a **wide** one (hair and neck too), at 64×64 (and any other `--sizes`).
# It resumes where it stopped and checks every shard, so a Colab disconnect costs nothing.
#
# In `SMOKE` mode the notebook writes a *synthetic* CelebA - drawn faces in the real file layout with real
# attribute files - so the very same code path runs in CI without the real data.

# %%
from cvaelib.data.shards import load_prepared

prepared = env.work_dir / ("celeba_smoke" if env.smoke else "celeba_prepared")
if env.smoke:
    import importlib.util

    spec = importlib.util.spec_from_file_location("celeba_fixture", REPO / "tests" / "fixtures" / "celeba_fixture.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    CELEBA_SRC = fixture.make_celeba_fixture(env.work_dir / "celeba_smoke_src", n=80, layout="official")

from data_prep.celeba import prepare_celeba

if not (prepared / "manifest.json").exists() or env.smoke:
    if not CELEBA_SRC.exists():
        raise cvaelib.DataError(f"CelebA not found at {CELEBA_SRC}; see the README section 'Getting CelebA onto "
                                f"Colab' (or run with SMOKE=1 for the synthetic sample)")
    prepare_celeba(CELEBA_SRC, prepared, sizes=(SIZE,), variants=("zoom",), workers=2 if env.smoke else None)
train = load_prepared(prepared, "train", size=SIZE, limit=LIMIT)
val = load_prepared(prepared, "val", size=SIZE, limit=None if env.smoke else 2000)
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
from cvaelib.conditions import with_clip_condition

if USE_REAL_CLIP:
    encoder = load_clip("ViT-B/32", device=env.device)  # downloads ~340 MB once
else:
    from cvaelib.clip.synthetic import save_random_clip

    clip_file = env.work_dir / "random_clip_small.pt"
    save_random_clip(clip_file, shape="tiny")
    encoder = load_clip(str(clip_file), device=env.device)
clip_train = with_clip_condition(train, encoder, prepared / "clip_cache" / f"train_{SIZE}_{LIMIT}")
clip_val = with_clip_condition(val, encoder, prepared / "clip_cache" / f"val_{SIZE}")
print(f"condition: {clip_train.labels.shape[1]}-d CLIP embeddings; attributes kept in meta['attributes']")

# %% [markdown]
# ## 3. The residual VAE and its five injection points
# Each down-sampling block adds a cheap path (average-pool, one convolution) to a deeper one (convolution,
# batch-norm, activation, pool, convolution, batch-norm): the residual shape that lets deep networks train.

# %%
from cvaelib.models import INJECTIONS, AttributeCVAE, ResidualVAE
from cvaelib.models.resvae import ResDown

show_source(ResDown)

# %% [markdown]
# Five blocks take 64×64 down to 2×2 (64 → 32 → 16 → 8 → 4 → 2); a 2×2 convolution gives the mean and log-variance
# of a 128-d code, and six up-sampling blocks go back.  **Where does the condition enter the encoder?**
#
# | `injection` | the encoder sees the CLIP embedding...                 | sources' name |
# |---|---|---|
# | `none`      | never (an unconditional VAE, the baseline)             | RES_VAE0 |
# | `input`     | as extra input channels                                | RES_VAE1 |
# | `down3`     | added to the feature maps after block 3 (8×8)         | RES_VAE2 (their best) |
# | `down4`     | added after block 4 (4×4)                              | RES_VAE3 |
# | `latent`    | not at all - only the decoder gets it                  | RES_VAE4 |
#
# The decoder always receives `[z, c]`.  Loss: the kit's ELBO terms (Bernoulli NLL + β·KL; β = 1 here equals the
# sources' `mean BCE + 0.01·mean KL`), and optionally a VGG19 perceptual term (`perceptual=1.0`, needs the ImageNet
# VGG weights, a one-off download on Colab): sharper faces, about 3.5× the compute per image.

# %%
show_source(ResidualVAE.encode)

# %% [markdown]
# ## 4. Compare the injection points
# Same data, same budget, five models.  The numbers to read: the validation **reconstruction** term (how much of a
# face the model keeps) and the **KL** (how much information flows through z).  A condition that already says
# what the face looks like lets z carry less - a lower KL at a similar reconstruction is the sign that the
# condition is being *used*.  Checkpoints are kept: re-running the cell loads them.

# %%
results, models = {}, {}
for injection in INJECTIONS:
    run = env.work_dir / f"06_resvae_{injection}{'_smoke' if env.smoke else ''}" / "checkpoint.pt"
    if run.exists() and not env.smoke:
        model = cvaelib.load_model(run, env.device)
        history = None
    else:
        torch.manual_seed(0)
        model = ResidualVAE(image_shape=train.shape, latent_dim=128, injection=injection, width=WIDTH,
                            cond_dim=clip_train.labels.shape[1], cond_noise=0.05,
                            clip="ViT-B/32" if USE_REAL_CLIP else str(clip_file))
        data_t, data_v = (train, val) if injection == "none" else (clip_train, clip_val)
        history = cvaelib.fit(model, data_t, data_v, epochs=EPOCHS, batch_size=128, lr=1e-3, device=env.device,
                              checkpoint=run, progress=not env.smoke)
    models[injection] = model
    terms = cvaelib.evaluate(model, val if injection == "none" else clip_val, device=env.device)
    results[injection] = terms
    print(f"{injection:7s} val recon {terms['recon']:8.1f}  kl {terms['kl']:6.1f}  loss {terms['loss']:8.1f}")

# %% [markdown]
# Samples from each model, conditioned on the CLIP embeddings of the same eight validation faces (`none` ignores
# them: its faces are random).  A model that uses its condition draws faces *like* the ones in the first row.

# %%
g = torch.Generator().manual_seed(0)
rows = [val.float_images()[:8]]
for injection, model in models.items():
    c = None if injection == "none" else clip_val.labels[:8].to(env.device)
    rows.append(model.sample(8, c, generator=torch.Generator().manual_seed(0)).cpu())
show(cvaelib.show_grid(torch.cat(rows), ncols=8, row_labels=["real"] + list(INJECTIONS),
                       title="conditioned on the real faces' CLIP embeddings"))

# %% [markdown]
# The sources found `down3` best: injected at 8×8 the condition still shapes mid-level features, while at the
# input it competes with 12,288 pixel values and at `latent` the encoder cannot account for it at all.  Check
# whether your numbers agree, then train the chosen variant longer:

# %%
BEST = "down3"
best_run = env.work_dir / f"06_resvae_best{'_smoke' if env.smoke else ''}" / "checkpoint.pt"
model = ResidualVAE(**{k: v for k, v in models[BEST].config.items() if k != "model"})
history = cvaelib.fit(model, clip_train, clip_val, epochs=BEST_EPOCHS, batch_size=128, device=env.device,
                      checkpoint=best_run, resume=True, progress=not env.smoke)
show(cvaelib.plot_history(history))

# %% [markdown]
# ## 5. Text → face
# The model only ever saw *image* embeddings.  A text embedding sits elsewhere on the sphere (the modality gap of
# lesson 05), so the **retrieval bridge** conditions each sample on one of the training faces' embeddings that
# are nearest to the text (the model kept a bank of them in its checkpoint).  With `SMOKE=1` the random CLIP
# makes these pictures meaningless; with ViT-B/32 on real CelebA they follow the words.

# %%
from cvaelib.clip_generate import generate_from_images, generate_from_text, interpolate, manipulate, reconstruct

prompts = ["a smiling woman with blond hair", "a man with a beard and glasses", "an old man wearing a hat",
           "a young woman with red lipstick"]
show(cvaelib.show_grid(torch.cat([generate_from_text(model, encoder, p, 8, seed=0) for p in prompts]), ncols=8,
                       row_labels=[p[:24] for p in prompts], title="text -> face (retrieval bridge)"))

# %% [markdown]
# **How good are these faces, in numbers?** FID compares the statistics of generated and real faces in
# Inception-v3 features (Heusel et al. 2017). It is only meaningful with thousands of images per set — below 2,048
# the kit prints a warning, and every FID shows its sample counts. Its weights download once (on Colab); offline
# the cell says so instead of failing.

# %%
from cvaelib.errors import KitError
from cvaelib.metrics import inception_fid

n_fid = min(len(val), 64 if env.smoke else 2048)
per_prompt = -(-n_fid // len(prompts))
fakes = torch.cat([generate_from_text(model, encoder, p, per_prompt, seed=0) for p in prompts])[:n_fid]
try:  # in SMOKE mode never download (CI is offline); on Colab the weights download once
    print(inception_fid(fakes, val.float_images()[:n_fid], device=env.device, allow_download=not env.smoke))
except KitError as err:  # offline without the Inception weights
    print(f"FID skipped: {err}")

# %% [markdown]
# ## 6. Image → image
# Condition on the embedding of a given face, draw new z: "more faces like this one".

# %%
x = val.float_images()[:6]
show(cvaelib.show_grid(torch.cat([x, generate_from_images(model, encoder, x, n_per_image=1, seed=1),
                                  generate_from_images(model, encoder, x, n_per_image=1, seed=2)]), ncols=6,
                       title="top: given faces; below: new samples with their embeddings"))

# %% [markdown]
# ## 7. Attribute manipulation: "wearing glasses"
# Mix the face's own embedding with the bridged text, $c = \mathrm{normalise}(f\,c_\text{image} +
# (1-f)\,c_\text{text})$, and decode with the face's **own** z (its posterior mean): the person stays, the content
# moves toward the text.  $f = 1$ is the reconstruction; lower $f$ pushes harder.

# %% [markdown]
# ### Exercise 1 · Mix an image's condition with a text's
# Write the mixing rule above: `c_image` holds one unit-length CLIP embedding per face `[N, D]`, `c_text` one text
# embedding `[D]`; return `[N, D]` conditions, f·c_image + (1 − f)·c_text brought back to unit length.

# %%
import torch.nn.functional as F


def mix_condition(c_image, c_text, f):
    ### BEGIN SOLUTION
    return F.normalize(f * c_image + (1 - f) * c_text, dim=-1)
    ### END SOLUTION


# %%
from cvaelib.teach import check_condition_mix

check_condition_mix(mix_condition)

# %%
factors = [1.0, 0.75, 0.5, 0.25]
rows = [manipulate(model, encoder, x, "a person wearing glasses", image_embed_factor=f) for f in factors]
show(cvaelib.show_grid(torch.cat([x] + rows), ncols=6, row_labels=["input"] + [f"f={f}" for f in factors],
                       title="'a person wearing glasses'"))

# %% [markdown]
# The same as a widget: the slider only calls `manipulate`.

# %%
import ipywidgets as widgets
from IPython.display import display

text_box = widgets.Text(value="a person wearing glasses", description="text")
factor = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="image factor")
button = widgets.Button(description="Apply")
output = widgets.Output()


def on_click(_):
    with output:
        output.clear_output(wait=True)
        try:
            edited = manipulate(model, encoder, x, text_box.value, image_embed_factor=factor.value)
            show(cvaelib.show_grid(torch.cat([x, edited]), ncols=6, title=f"{text_box.value}, f={factor.value}"))
        except cvaelib.KitError as exc:
            print(exc)


button.on_click(on_click)
display(widgets.HBox([text_box, factor, button]), output)
on_click(None)

# %% [markdown]
# ## 8. Interpolation and reconstruction
# Walk from one prompt to another along the great circle between their conditions (one shared z), and from one
# face to another (conditions *and* codes interpolated).  Last: plain reconstructions.

# %%
show(cvaelib.show_grid(torch.cat([interpolate(model, encoder, "a smiling young woman", "a serious old man", 8),
                                  interpolate(model, encoder, x[0], x[1], steps=8)]), ncols=8,
                       title="prompt -> prompt; face -> face"))
recon = reconstruct(model, encoder, x)
show(cvaelib.show_grid(torch.cat([x, recon]), ncols=6, title="input / reconstruction"))
from cvaelib.metrics import ssim

print(f"SSIM of reconstructions: {float(ssim(recon, x)):.3f} (1 = identical)")

# %% [markdown]
# ## 9. Attributes vs CLIP: the multi-label CVAE
# CelebA comes with 40 labels per face.  Condition the same residual VAE on the 40-d multi-hot vector instead of a
# CLIP embedding (the cVAE report among the kit's sources did this with an MLP) and switching one entry while
# keeping z fixed should change that attribute only.

# %%
attr_run = env.work_dir / f"06_attr_cvae{'_smoke' if env.smoke else ''}" / "checkpoint.pt"
torch.manual_seed(0)
attr_model = AttributeCVAE(image_shape=train.shape, latent_dim=128, width=WIDTH, attribute_names=names)
attr_history = cvaelib.fit(attr_model, train, val, epochs=BEST_EPOCHS, batch_size=128, device=env.device,
                           checkpoint=attr_run, resume=True, progress=not env.smoke)
print(f"attribute CVAE: val recon {attr_history.val[-1]['recon']:.1f}, kl {attr_history.val[-1]['kl']:.1f}")

# %% [markdown]
# ### Exercise 2 · Switch one attribute
# The edits below set or flip one entry of the 40-d multi-hot condition. Write `toggle(c, index, value=None)`: it
# returns a **copy** of `c` `[N, 40]` with column `index` set to `value`, or flipped (0 ↔ 1) when `value` is None.
# (Why a copy? The conditions of the input faces must stay as they are for the other rows of the figure.)

# %%
def toggle(c, index, value=None):
    ### BEGIN SOLUTION
    c = c.clone()
    c[:, index] = (1.0 - c[:, index]) if value is None else value
    return c
    ### END SOLUTION


# %%
from cvaelib.teach import check_toggle

check_toggle(toggle)

# %% [markdown]
# Same faces, their own z, one attribute switched at a time (left: attributes, right: CLIP with a text):

# %%
xa, ca = val.float_images()[:6].to(env.device), val.labels[:6].to(env.device)
with torch.no_grad():
    z = attr_model.encode(xa, ca)[0]
    edits = {"as labelled": ca, "+ Eyeglasses": attr_model.toggle(ca, "Eyeglasses", 1),
             "+ Smiling": attr_model.toggle(ca, "Smiling", 1), "flip Male": attr_model.toggle(ca, "Male")}
    attr_rows = [torch.sigmoid(attr_model.decode(z, c.to(env.device))).cpu() for c in edits.values()]
clip_rows = [manipulate(model, encoder, xa.cpu(), t, image_embed_factor=0.5)
             for t in ("a person wearing glasses", "a smiling person", "a person of the other gender")]
show(cvaelib.show_grid(torch.cat([xa.cpu()] + attr_rows), ncols=6, row_labels=["input"] + list(edits),
                       title="attribute CVAE: toggles"))
show(cvaelib.show_grid(torch.cat([xa.cpu(), recon] + clip_rows), ncols=6,
                       row_labels=["input", "recon", "+ glasses", "+ smile", "other gender"],
                       title="CLIP-CVAE: text manipulation"))

# %% [markdown]
# What to notice:
# - **Attributes** are precise and cheap - "Eyeglasses" is one number - but only 40 concepts exist, and they are
#   only as good as the annotators (CelebA's labels are noisy: "Attractive" and "Young" are opinions).
# - **CLIP** knows open vocabulary ("red lipstick", "looking up", "Taylor Swift lookalike") and needs no labels at
#   all, but what an embedding encodes is decided by CLIP, not by you: identity, pose and lighting move along with
#   the attribute you asked for, and the text has to cross the modality gap first.
#
# ## 10. Beyond one GPU
# `fit` - and therefore `python -m cvaelib train` - runs under PyTorch's own launcher with DistributedDataParallel,
# one process per GPU, with no code change:
#
# ```
# torchrun --nproc_per_node 2 -m cvaelib train --model resvae --dataset celeba:cvae-work/celeba_prepared \
#          --injection down3 --epochs 10 --out runs/celeba_down3
# python -m cvaelib train --model attr-cvae --dataset celeba:cvae-work/celeba_prepared --epochs 10 --out runs/attr
# ```
#
# **Open questions**
# 1. Rank the five injection points by validation KL and by reconstruction.  Do they agree with the sources?
#    Train `input` and `down3` twice as long: does the ranking hold?
# 2. Turn on the perceptual loss (`ResidualVAE(..., perceptual=1.0)`) for the best variant and compare the SSIM
#    of reconstructions and how sharp samples look.  What does it cost per epoch?
# 3. Which attribute toggles of the multi-label CVAE also change things they should not (e.g. "Male" and hair
#    length)?  Why would the training data cause that?
#
# **Takeaway:** the same conditional VAE scales to colour faces with residual blocks; where the condition enters
# matters; a CLIP condition trades the precision of labels for an open vocabulary.
#
# ## What's next
# [07 · Text to image on COCO](07_coco_text_to_image.ipynb) leaves faces for everyday scenes: COCO photos with their captions - and shows where a CVAE's blur
# becomes the limit.
