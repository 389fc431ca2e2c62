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
# # 07 · Captions to pictures: a CLIP-CVAE on COCO, and where it blurs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/07_coco_text_to_image.ipynb)
#
# > **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each exercise tells you what is wrong and gives a hint.
#
# **You will learn**
# - how to build a *themed* subset of COCO (fields, animals, trees, water) from its captions, and prepare it once;
# - how the residual CLIP-CVAE of lesson 06 turns captions of everyday scenes into 64×64 (or 128×128) pictures;
# - to measure honestly (SSIM, FID, CLIP score) why a CVAE's pictures are blurry, and what came after CVAEs.
#
# **Prerequisites:** lesson 06.
# **Runtime:** on a Colab T4 about 10 min to download and prepare ~10,000 themed COCO images, then about 15 min of
# training at 64×64 (about 4× that at 128×128).  On a laptop CPU the full run takes hours (estimate: training is
# roughly 20× slower than on a T4), so use `SMOKE=1` there: seconds, on the 100-image COCO sample.
#
# Data: Microsoft COCO (Lin et al. 2014, "Microsoft COCO: Common Objects in Context", https://arxiv.org/abs/1405.0312;
# captions: Chen et al. 2015, https://arxiv.org/abs/1504.00325; annotations CC BY 4.0, images under their Flickr
# licences, which the prep script records per image).  Papers: CLIP (Radford et al. 2021,
# https://arxiv.org/abs/2103.00020), FID (Heusel et al. 2017, https://arxiv.org/abs/1706.08500), SSIM (Wang et al.
# 2004), VQ-VAE (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937), DDPM (Ho et al. 2020,
# https://arxiv.org/abs/2006.11239), latent diffusion (Rombach et al. 2022, https://arxiv.org/abs/2112.10752),
# DALL·E 2 (Ramesh et al. 2022, https://arxiv.org/abs/2204.06125).

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
from cvaelib.notebook import setup, show

env = setup(seed=0)  # setup(drive=True) on Colab keeps prepared data and checkpoints on Google Drive
REPO = Path(cvaelib.__file__).resolve().parents[1]
if not (REPO / "data_prep").is_dir():  # a pip install has only cvaelib; the prep scripts live in the repository
    if not Path("kit-src").is_dir():
        subprocess.run(["git", "clone", "-q", "--depth", "1",
                        "https://github.com/cvae-course-kit/cvae-course-kit.git", "kit-src"], check=True)
    REPO = Path("kit-src").resolve()
sys.path.insert(0, str(REPO))

SIZE = 32 if env.smoke else 64          # 128 works too (one more residual block each way, ~4x the compute)
WIDTH = 8 if env.smoke else 32
EPOCHS = 2 if env.smoke else 30
LIMIT = None if env.smoke else 12_000    # themed training images to download and prepare
USE_REAL_CLIP = not env.smoke            # False: a small random CLIP (offline; its embeddings mean nothing)
# COCO captions: on Colab the notebook downloads the official annotation zip (241 MB) into ANNOTATIONS.
ANNOTATIONS = Path("/content/coco/annotations") if env.in_colab else Path("data/coco/annotations")

# %% [markdown]
# ## 1. A themed COCO subset
# COCO has 118k training photos with five human captions each - kitchens, streets, sports, animals.  A small CVAE
# cannot model all of that, so (like the COCO project among the kit's sources) we keep one theme: photos whose
# captions mention the countryside (fields, meadows, farm animals, trees, mountains, lakes...).  The filter matches
# whole words, so "hillside" counts but "chill" does not.  `data_prep.coco` downloads only the selected images (with
# retries and resume), centre-crops them and writes 64/128-pixel shards plus the captions.

# %%
from data_prep.coco import DEFAULT_KEYWORDS, prepare_coco

print("theme words:", ", ".join(DEFAULT_KEYWORDS))
prepared = env.work_dir / ("coco_smoke" if env.smoke else "coco_prepared")
if env.smoke:  # the 100-image sample of COCO val2017 that ships with the course data
    sample = env.data_root / "coco_sample"
    prepare_coco([sample / "annotations" / "captions_val2017_sample.json"], prepared, images_dir=sample,
                 sizes=(SIZE,), workers=2)
elif not (prepared / "manifest.json").exists():
    if not (ANNOTATIONS / "captions_train2017.json").exists():
        ANNOTATIONS.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["wget", "-q", "-nc", "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                        "-P", str(ANNOTATIONS.parent)], check=True)
        subprocess.run(["unzip", "-q", "-o", str(ANNOTATIONS.parent / "annotations_trainval2017.zip"), "-d",
                        str(ANNOTATIONS.parent)], check=True)
    prepare_coco([ANNOTATIONS / "captions_train2017.json", ANNOTATIONS / "captions_val2017.json"], prepared,
                 download_missing=True, sizes=(64, 128), limit=LIMIT)

# %%
from cvaelib.data.shards import load_prepared, prepared_splits

splits = prepared_splits(prepared)
print("prepared:", splits)
if "train" in splits:
    train, val = load_prepared(prepared, "train", size=SIZE), load_prepared(prepared, "val", size=SIZE)
else:  # the sample has only val2017 images: hold out a few of them
    data = load_prepared(prepared, "val", size=SIZE)
    train, val = cvaelib.train_val_split(data, 0.2, seed=0)
captions = lambda d, i: d.meta["captions"][int(d.labels[i])]  # labels index the split's caption lists  # noqa: E731
print(f"train {len(train)}, val {len(val)} images of shape {train.shape}")
show(cvaelib.show_grid(train.float_images()[:8], titles=[captions(train, i)[0][:28] for i in range(8)], ncols=4))

# %% [markdown]
# ## 2. CLIP embeddings and the model
# Exactly lesson 06's recipe: condition each photo on CLIP's embedding of the *photo* (no captions needed to train),
# a residual VAE with the condition added after down-block 3, and a retrieval bridge from text to image embeddings
# at generation time.  COCO's captions are only used to *test* it.

# %%
from cvaelib.clip import load_clip
from cvaelib.conditions import with_clip_condition
from cvaelib.models import ResidualVAE

if USE_REAL_CLIP:
    clip_name = "ViT-B/32"
else:
    from cvaelib.clip.synthetic import save_random_clip

    clip_name = str(env.work_dir / "random_clip_small.pt")
    save_random_clip(clip_name, shape="tiny")
encoder = load_clip(clip_name, device=env.device)
clip_train = with_clip_condition(train, encoder, prepared / "clip_cache" / f"train_{SIZE}")
clip_val = with_clip_condition(val, encoder, prepared / "clip_cache" / f"val_{SIZE}")

run = env.work_dir / f"07_coco_resvae_{SIZE}{'_smoke' if env.smoke else ''}" / "checkpoint.pt"
torch.manual_seed(0)
model = ResidualVAE(image_shape=train.shape, latent_dim=128, injection="down3", width=WIDTH,
                    cond_dim=clip_train.labels.shape[1], cond_noise=0.05, clip=clip_name)
history = cvaelib.fit(model, clip_train, clip_val, epochs=EPOCHS, batch_size=128, device=env.device,
                      checkpoint=run, resume=not env.smoke, progress=not env.smoke)
show(cvaelib.plot_history(history))

# %% [markdown]
# The same from a terminal (and under `torchrun` on several GPUs):
#
# ```
# python -m cvaelib train --model resvae --dataset coco:cvae-work/coco_prepared --image-size 64 --epochs 30 \
#        --out runs/coco64
# ```

# %% [markdown]
# ## 3. Captions → images
# Captions of *validation* photos the model never saw, next to the photo they describe.  Read the rows as "what the
# caption asked for" vs "what the CVAE drew" - it gets colour, layout and the rough scene (green field below, sky
# above, a dark blob for a cow), not objects.

# %%
from cvaelib.clip_generate import generate_from_text, reconstruct

n_show = min(6, len(val))
texts = [captions(val, i)[0] for i in range(n_show)]
drawn = torch.cat([generate_from_text(model, encoder, t, 1, seed=i) for i, t in enumerate(texts)])
show(cvaelib.show_grid(torch.cat([val.float_images()[:n_show], drawn]), ncols=n_show,
                       titles=[t[:22] for t in texts] + [""] * n_show, title="top: photo; bottom: from its caption"))

# %% [markdown]
# ## 4. Where a CVAE blurs - measured
# Three numbers, each answering a different question:
# - **SSIM** of reconstructions (structure kept when the model *sees* the photo; 1 = identical);
# - **CLIP score**: cosine similarity between CLIP's embedding of a generated image and of its caption (does the
#   picture match the words?), next to the same score for the real photos;
# - **FID** between generated and real images in Inception features (do samples look like photos at all?).
#   Inception FID needs ≥ 2,048 images per set to be meaningful and a one-off download of its weights; in SMOKE
#   mode it is skipped.

# %%
from cvaelib.metrics import clip_score, inception_fid, ssim

x = val.float_images()[:64]
rec = reconstruct(model, encoder, x)
print(f"SSIM(reconstruction, photo) = {float(ssim(rec, x)):.3f}")
caps = [captions(val, i)[0] for i in range(len(x))]
gen = torch.cat([generate_from_text(model, encoder, t, 1, seed=i) for i, t in enumerate(caps)])
t_emb = encoder.encode_text(caps)
print(f"CLIP score: real photos {float(clip_score(encoder.encode_images(x), t_emb)):.3f}, "
      f"generated {float(clip_score(encoder.encode_images(gen), t_emb)):.3f}")
if not env.smoke:
    n = min(len(val), 5000)
    fakes = torch.cat([model.sample(256, clip_val.labels[i:i + 256].to(env.device)).cpu()
                       for i in range(0, n, 256)])
    print(inception_fid(fakes, val.float_images()[:n], device=env.device))

show(cvaelib.show_grid(torch.cat([x[:8], rec[:8]]), ncols=8, title="photo / reconstruction: detail is gone"))

# %% [markdown]
# ### Exercise 1 · The CLIP score
# Write it: the cosine similarity between row i of `image_emb` `[N, D]` and row i of `text_emb` (`[N, D]`, or one
# row `[1, D]` that is compared with every image), averaged over the rows. Embeddings may not be normalised.

# %%
import torch.nn.functional as F


def my_clip_score(image_emb, text_emb):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 1: The CLIP score")


# %%
from cvaelib.teach import check_clip_score

check_clip_score(my_clip_score)

# %% [markdown]
# ### Exercise 2 · The Fréchet distance behind FID
# FID fits a Gaussian to each set of Inception features (mean μ, covariance Σ) and measures
# $\lVert\mu_1-\mu_2\rVert^2 + \mathrm{Tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)$ (Heusel et al. 2017).
# Write it with numpy for given statistics; `scipy.linalg.sqrtm` is the *matrix* square root (keep its `.real`
# part: rounding can add tiny imaginary parts).

# %%
import numpy as np
import scipy.linalg


def frechet(mu1, sigma1, mu2, sigma2):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: The Fréchet distance behind FID")


# %%
from cvaelib.teach import check_frechet_distance

check_frechet_distance(frechet)

# %% [markdown]
# **Why the blur?**  The decoder outputs one value per pixel and is trained with a per-pixel likelihood.  When the
# condition and z leave the exact position of every blade of grass uncertain, the loss is minimised by the
# *average* of all plausible images - and the average of many sharp images is a blurry one.  A larger latent, a
# smaller β or the VGG perceptual loss of lesson 06 sharpen things a little; they do not change the principle.
# Note also that the *reconstruction* (the model saw the photo) is already blurry: the information bottleneck and
# the Gaussian decoder, not the text, are the limit.
#
# ## 5. What came next
# - **VQ-VAE** (van den Oord et al. 2017): a *discrete* latent grid plus an autoregressive prior over the codes -
#   sharper, because the prior, not the decoder, models what is uncertain.  The kit's `vqvae` model shows it on
#   digits; VQGAN (Esser et al. 2021) adds an adversarial and perceptual loss to the same idea.
# - **DALL·E 2 / unCLIP** (Ramesh et al. 2022) kept this lesson's structure - CLIP image embeddings as the
#   condition, a *prior* from text to image embedding (our retrieval bridge is its nearest-neighbour stand-in) -
#   but replaced the CVAE decoder with a diffusion model.
# - **Diffusion models** (Ho et al. 2020) and **latent diffusion** (Rombach et al. 2022, Stable Diffusion) generate
#   by removing noise step by step; they are what text-to-image means today.
#
# **Open questions**
# 1. Set `SIZE = 128` and retrain (a T4 runs it at roughly a quarter of the 64×64 speed).  Does SSIM improve or
#    get worse?  Why would a bigger image make the per-pixel average *more* blurry?
# 2. Compare `bridge="direct"` with the default retrieval bridge by CLIP score.  Which one matches the caption
#    better, and which one looks more like a photo?
# 3. Change the theme: prepare a subset with other keywords (`python -m data_prep.coco --keywords ...`) - e.g.
#    food or trains - and compare FID.
#
# **Takeaway:** a CLIP-CVAE draws the gist of a caption - colours and layout - but a per-pixel likelihood averages
# away detail; discrete latents and diffusion are the tools that keep it.
#
# ## What's next
# [08 · CLIP-guided latent optimisation](08_clip_guided.ipynb): steer a decoder toward a prompt by optimising its
# latent, and [09 · VQ-VAE](09_vqvae.ipynb): discrete codes, sharp reconstructions and a prior trained afterwards.
