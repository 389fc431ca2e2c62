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
# - how to build a *themed* subset of COCO from its captions — and why whole-word matching matters, shown on real
#   captions — and how to embed captions longer than CLIP's 77 tokens sentence by sentence;
# - how the residual CLIP-CVAE of lesson 06 turns captions of everyday scenes into 64×64 pictures, with the
#   condition concatenated to z or added to it;
# - to measure honestly (SSIM, CLIP score, Fréchet distances) why a CVAE's pictures are blurry, to read the
#   sources' numbers beside the kit's, and what a dataset of Flickr photos brings with it.
#
# **Prerequisites:** lesson 06.
# **Runtime:** this lesson needs a GPU for a real run: on a Colab T4 about 10 min to download and prepare ~10,000
# themed COCO images and embed them with CLIP ViT-B/32, then about 30 min of training (two 64×64 models × 30
# epochs) — estimates, not yet measured on a T4. **On a CPU it runs only in `SMOKE=1` mode (under a minute)**, on the
# 100 real COCO val2017 photos that ship with the course data (38 of them on theme), 32×32 pixels, two epochs, and a
# small *random* CLIP whose embeddings mean nothing: the caption-filter counts and the long-caption token counts are
# real, the pictures and scores only show that every step runs. What a full run is expected to show, from the
# kit's sources: pictures with the right colours and rough layout of the scene (green below, sky above) but no
# recognisable objects, SSIM about 0.4 and FID in the 200s.
#
# Data: Microsoft COCO (Lin et al. 2014, "Microsoft COCO: Common Objects in Context", https://arxiv.org/abs/1405.0312;
# captions: Chen et al. 2015, https://arxiv.org/abs/1504.00325; annotations CC BY 4.0, images under their Flickr
# licences, which the prep script records per image).  Papers: CLIP (Radford et al. 2021,
# https://arxiv.org/abs/2103.00020), Long-CLIP (Zhang et al. 2024, https://arxiv.org/abs/2403.15378), FID (Heusel et
# al. 2017, https://arxiv.org/abs/1706.08500), SSIM (Wang et al. 2004), VQ-VAE (van den Oord et al. 2017,
# https://arxiv.org/abs/1711.00937), DDPM (Ho et al. 2020, https://arxiv.org/abs/2006.11239), latent diffusion
# (Rombach et al. 2022, https://arxiv.org/abs/2112.10752), DALL·E 2 (Ramesh et al. 2022,
# https://arxiv.org/abs/2204.06125).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import re

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import cvaelib
from cvaelib.notebook import setup, show
from cvaelib.teach import check_prediction

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
BATCH = 8 if env.smoke else 128          # SMOKE: a few steps per epoch on 30 photos
LIMIT = None if env.smoke else 12_000    # themed training images to download and prepare
USE_REAL_CLIP = not env.smoke            # False: a small random CLIP (offline; its embeddings mean nothing)
# COCO captions: on Colab the notebook downloads the official annotation zip (241 MB) into ANNOTATIONS.
ANNOTATIONS = Path("/content/coco/annotations") if env.in_colab else Path("data/coco/annotations")
SAMPLE = env.data_root / "coco_sample"   # 100 real val2017 photos with their captions (the course data)

# %% [markdown]
# ## 1. A themed COCO subset — and a filter that reads whole words
# COCO has 118k training photos with five human captions each — kitchens, streets, sports, animals.  A small CVAE
# cannot model all of that, so (like the COCO project among the kit's sources) we keep one theme: photos whose
# captions mention the countryside (fields, meadows, farm animals, trees, mountains, lakes...).  That project kept a
# caption when a theme word occurred *anywhere* in it (`"tree" in caption`); `data_prep.coco` matches whole words and
# regular plurals instead (`\btrees?\b`). Both, on the real captions of the course's COCO sample:

# %%
from data_prep.caption_filter import compare_filters
from data_prep.coco import DEFAULT_KEYWORDS, load_captions, prepare_coco

print("theme words:", ", ".join(DEFAULT_KEYWORDS))
caption_file = SAMPLE / "annotations" / "captions_val2017_sample.json"
if not env.smoke and (ANNOTATIONS / "captions_val2017.json").exists():
    caption_file = ANNOTATIONS / "captions_val2017.json"  # all 25,000 val2017 captions once they are downloaded
_, _, coco_images, _ = load_captions(caption_file)
all_captions = [c for im in coco_images for c in im["captions"]]
filters = compare_filters(all_captions, DEFAULT_KEYWORDS)
print(f"{filters.captions} real captions of {len(coco_images)} photos ({caption_file.name}): the whole-word filter "
      f"keeps {filters.word_kept}, the substring filter {filters.substring_kept}")

# %% [markdown]
# **Predict first.** The substring filter keeps more captions. Of its extra captions, how many are about the
# countryside? (a) most of them; (b) about half; (c) almost none. Set `prediction` to your letter and run the check;
# the cells after it show who was right.

# %%
# Exercise: predict — are the substring filter's extra captions on theme?
# YOUR CODE HERE
raise NotImplementedError("Exercise 1: predict — are the substring filter's extra captions on theme?")

# %%
check_prediction("07.substring", prediction)

# %%
print(f"kept only by the substring filter: {len(filters.substring_only)} captions")
for (keyword, word), n in list(filters.by_keyword().items())[:8]:
    example = next(h.caption for h in filters.substring_only if (h.keyword, h.word) == (keyword, word))
    print(f"  {n:4d} x '{keyword}' inside '{word}'   e.g. {example!r}")
print(f"kept only by the whole-word filter (plurals such as 'calves', 'ponies'): {len(filters.word_only)}")
for hit in filters.word_only[:3]:
    print(f"  '{hit.word}'   e.g. {hit.caption!r}")

# %% [markdown]
# Read the list: almost every extra caption is a city street or a ball game. A few substring hits are arguably on
# theme ("mountainous" contains "mountain") — whole words trade those for precision; add such words to the keyword
# list when you want them. `data_prep.coco` downloads only the selected images (with retries and resume),
# centre-crops them and writes 64/128-pixel shards plus all captions. In SMOKE mode it reads the course's 100-photo
# sample instead of downloading.

# %%
prepared = env.work_dir / ("coco_smoke" if env.smoke else "coco_prepared")
if env.smoke:  # the 100-image sample of COCO val2017 that ships with the course data
    prepare_coco([SAMPLE / "annotations" / "captions_val2017_sample.json"], prepared, images_dir=SAMPLE,
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
# ## 2. CLIP and long captions
# As in lesson 06, the CVAE is conditioned on CLIP's embedding of each *photo* — no captions needed to train — and
# a caption reaches it through the retrieval bridge at generation time.
#
# A caption, though, can be longer than CLIP reads: its text tower takes 77 tokens (start and end markers
# included) and cuts the rest, and Long-CLIP (Zhang et al. 2024) found the *effective* length nearer 20. The COCO
# article among the kit's sources split long text into sentences, embedded each and averaged:
#
# $$ e(\text{text}) = \frac{\bar e}{\lVert \bar e\rVert},\qquad \bar e = \frac1S\sum_{s=1}^{S} e(\text{sentence}_s),
#    \quad \lVert e(\text{sentence}_s)\rVert = 1 . $$
#
# The mean of unit vectors is shorter than 1 (by how much the sentences disagree), so it is normalised again —
# conditions live on the unit sphere. The five captions of one COCO photo, read as one paragraph, make such a text:

# %%
from cvaelib.clip import load_clip
from cvaelib.clip.text import CONTEXT_LENGTH, encode_ids, split_sentences

if USE_REAL_CLIP:
    clip_name = "ViT-B/32"
else:
    from cvaelib.clip.synthetic import save_random_clip

    clip_name = str(env.work_dir / "random_clip_small.pt")
    save_random_clip(clip_name, shape="tiny")
encoder = load_clip(clip_name, device=env.device)
env.smoke_banner("nothing measured yet: the kit's full COCO run needs a GPU and has not been run on one; the "
                 "sources report SSIM about 0.4 and FID in the 200s for their COCO CVAE")


def as_paragraph(caps):
    """Several captions as one text, one sentence each."""
    return " ".join(c.strip().rstrip(".") + "." for c in caps)


def paragraph(d, i):
    return as_paragraph(captions(d, i))


lengths = [len(encode_ids(as_paragraph(im["captions"]))) + 2 for im in coco_images]  # + start and end markers
print(f"{len(coco_images)} photos of {caption_file.name}: their five captions as one text have {min(lengths)}-"
      f"{max(lengths)} tokens; {sum(n > CONTEXT_LENGTH for n in lengths)} exceed CLIP's {CONTEXT_LENGTH}, "
      f"{sum(n > 20 for n in lengths)} the effective ~20 that Long-CLIP measured")
print(f"sentences of the first validation photo's text: {split_sentences(paragraph(val, 0))}")

# %% [markdown]
# ### Exercise 2 · Embed a long caption sentence by sentence
# `encoder` is a CLIP encoder (`encoder.encode_text(list_of_texts)` returns one unit-length row per text), `text` a
# string of several sentences. Return one unit-length embedding `[D]`: the re-normalised mean of the sentence
# embeddings. `cvaelib.clip.text.split_sentences` splits a text into sentences (it knows that "Mr." ends none).

# %%
def embed_long_caption(encoder, text):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: Embed a long caption sentence by sentence")


# %%
from cvaelib.teach import check_long_caption

check_long_caption(embed_long_caption)

# %% [markdown]
# How much does it matter? Each validation photo's paragraph embedded your way and in one pass (cut at 77 tokens),
# compared with CLIP's embedding of the photo itself. With the random SMOKE CLIP these cosines mean nothing; with
# ViT-B/32 a full run shows whether averaging sentences brings the text closer to its photo.

# %%
x_val = val.float_images()
img_val = encoder.encode_images(x_val)
long_val = torch.stack([embed_long_caption(encoder, paragraph(val, i)) for i in range(len(val))])
one_pass = encoder.encode_text([paragraph(val, i) for i in range(len(val))])  # truncated at 77 tokens
for name, emb in (("sentence average", long_val), ("one pass", one_pass)):
    print(f"{name:16s}: cosine with its photo {float((emb * img_val).sum(-1).mean()):.3f} on average "
          f"({len(val)} validation photos)")

# %% [markdown]
# ## 3. The model: lesson 06's residual CLIP-CVAE
# Exactly lesson 06's recipe: a residual VAE with the condition added after down-block 3, the decoder reading
# $[z, c]$, trained on the photos' CLIP embeddings; the β of lesson 06's derivation for the sources' 0.01.

# %%
from cvaelib.conditioning import with_clip_condition
from cvaelib.models import ResidualVAE

clip_train = with_clip_condition(train, encoder, prepared / "clip_cache" / f"train_{SIZE}")
clip_val = with_clip_condition(val, encoder, prepared / "clip_cache" / f"val_{SIZE}")
BETA = 0.01 * train.shape[0] * train.shape[1] * train.shape[2] / 128  # lesson 06: kl_weight * C*H*W / latent_dim
common = dict(image_shape=train.shape, latent_dim=128, injection="down3", width=WIDTH, beta=BETA,
              condition_dim=clip_train.conditions.shape[1], condition_noise=0.05, clip=clip_name)
torch.manual_seed(0)
model = ResidualVAE(**common)
history = cvaelib.fit(model, clip_train, clip_val, epochs=EPOCHS, batch_size=BATCH, device=env.device,
                      checkpoint=env.checkpoint(f"07_coco_resvae_{SIZE}"), resume=True)
show(cvaelib.plot_history(history))

# %% [markdown]
# The same from a terminal (and under `torchrun` on several GPUs):
#
# ```
# python -m cvaelib train --model resvae --dataset coco:cvae-work/coco_prepared --image-size 64 --epochs 30 \
#        --out runs/coco64
# ```
#
# ## 4. Captions → images
# Captions of *validation* photos the model never saw, next to the photo they describe — the first caption alone,
# and all five as a paragraph through your `embed_long_caption`. Read the rows as "what the caption asked for" vs
# "what the CVAE drew": a full run is expected to get colour, layout and the rough scene (green field below, sky
# above, a dark blob for a cow), not objects.

# %%
from cvaelib.clip_generate import generate_from_text, reconstruct

n_show = min(6, len(val))
texts = [captions(val, i)[0] for i in range(n_show)]
drawn = torch.cat([generate_from_text(model, encoder, t, 1, seed=i) for i, t in enumerate(texts)])
drawn_long = torch.cat([generate_from_text(model, encoder, long_val[i], 1, seed=i) for i in range(n_show)])
show(cvaelib.show_grid(torch.cat([x_val[:n_show], drawn, drawn_long]), ncols=n_show,
                       titles=[t[:22] for t in texts] + [""] * 2 * n_show,
                       row_labels=["photo", "1st caption", "5 captions"], title="captions of unseen photos"))

# %% [markdown]
# ## 5. Where a CVAE blurs — measured
# Four numbers, each answering a different question:
# - **SSIM** (structure, 1 = identical) of reconstructions — the model *sees* the photo — and of the picture drawn
#   from a photo's caption against that photo (the sources' "SSIM of generated images");
# - **CLIP score**: cosine similarity between CLIP's embedding of a picture and of its caption (does the picture
#   match the words?), next to the same score for the real photos;
# - a **Fréchet distance** between generated and real pictures — in Inception features this is FID (lesson 06),
#   which needs ≥ 2,048 images per set and a download; in CLIP's image features it runs anywhere.
#
# ### Exercise 3 · The CLIP score
# The cosine similarity between row i of `image_emb` `[N, D]` and row i of `text_emb` (`[N, D]`, or one row
# `[1, D]` that is compared with every image), averaged over the rows. Embeddings may not be normalised.

# %%
def my_clip_score(image_emb, text_emb):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 3: The CLIP score")


# %%
from cvaelib.teach import check_clip_score

check_clip_score(my_clip_score)

# %% [markdown]
# ### Exercise 4 · The Fréchet distance behind FID
# FID fits a Gaussian to each set of features (mean μ, covariance Σ) and measures
# $\lVert\mu_1-\mu_2\rVert^2 + \mathrm{Tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)$ (Heusel et al. 2017):
# the squared Wasserstein-2 distance between the two Gaussians. Write it with numpy for given statistics;
# `scipy.linalg.sqrtm` is the *matrix* square root (keep its `.real` part: rounding can add tiny imaginary parts).

# %%
import numpy as np
import scipy.linalg


def frechet(mu1, sigma1, mu2, sigma2):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 4: The Fréchet distance behind FID")


# %%
from cvaelib.teach import check_frechet_distance

check_frechet_distance(frechet)

# %% [markdown]
# Both of your functions measure the model. Every generated picture is conditioned on a **caption** (through the
# retrieval bridge), never on the photo's own image embedding, so the numbers describe text → image. In SMOKE mode
# the evaluation set is all 38 sample photos (the model trained on 30 of them; a Gaussian over fewer images than
# feature dimensions would be singular).

# %%
from cvaelib.errors import KitError
from cvaelib.metrics import inception_fid, ssim
from cvaelib.metrics.fid import feature_statistics

evaluation = (cvaelib.ImageData(torch.cat([train.images, val.images]), torch.cat([train.labels, val.labels]),
                                     [], "coco", val.meta) if env.smoke else val)
n_eval = min(len(evaluation), 2048)
x_eval = evaluation.float_images()[:n_eval]
caps_eval = [captions(evaluation, i)[0] for i in range(n_eval)]
txt_eval = encoder.encode_text(caps_eval)
img_eval = encoder.encode_images(x_eval)


def measure(model):
    """Reconstructions and caption samples of the evaluation photos, scored with your two functions."""
    gen = torch.cat([generate_from_text(model, encoder, txt_eval[i], 1, seed=i)
                     for i in tqdm(range(n_eval), desc="caption -> image", leave=False)])
    rec = reconstruct(model, encoder, x_eval)
    img_gen = encoder.encode_images(gen)
    return gen, {"SSIM, reconstruction vs photo": float(ssim(rec, x_eval)),
                 "SSIM, caption sample vs its photo": float(ssim(gen, x_eval)),
                 "CLIP score, caption sample": float(my_clip_score(img_gen, txt_eval)),
                 "Fréchet distance, CLIP features": frechet(*feature_statistics(img_gen),
                                                            *feature_statistics(img_eval))}


gen_eval, ours = measure(model)
try:  # in SMOKE mode never download (CI is offline); on Colab the weights download once
    fid = inception_fid(gen_eval, x_eval, device=env.device, allow_download=not env.smoke)
    ours["FID (Inception)"] = fid.value
except KitError as err:
    print(f"FID skipped: {err}")
    ours["FID (Inception)"] = float("nan")
sources = {"SSIM, caption sample vs its photo": "about 0.4", "FID (Inception)": "in the 200s"}
print(f"{'':36s} {'sources (COCO article)':>24s} {'this run':>10s}")
for key, value in ours.items():
    print(f"{key:36s} {sources.get(key, '-'):>24s} {value:10.3f}")
print(f"{'CLIP score, the real photos':36s} {'-':>24s} {float(my_clip_score(img_eval, txt_eval)):10.3f}")
print(f"(this run: {n_eval} photos at {SIZE}x{SIZE}, CLIP {encoder.name}; the sources' setup: COCO at 64-256 px, a "
      f"concatenating CVAE, sample size not stated)")

# %% [markdown]
# Read the columns with care: the article does not say how its SSIM paired images, nor how many images its FID
# used, and FID on fewer than 2,048 images is biased upwards. Agreement within a few hundredths is all one can ask.
#
# ## 6. Concatenated or added? The condition in the decoder
# The same article compared a CVAE that *concatenates* the condition with z against one that *adds* a projection of
# it (its Fashion-MNIST and COCO experiments; lesson 03 did it with labels) and found concatenation better on COCO.
# Why would it be? The decoder's first layer is linear in its input (a convolution on a 1×1 map), so split its
# weight matrix by input:
#
# $$ W\begin{bmatrix} z\\ c\end{bmatrix} = W_z z + W_c c \quad\text{(concat)}, \qquad
#    W(z + Pc) = W z + (WP)\,c \quad\text{(add)}. $$

# %% [markdown]
# **Predict first.** Compare the two right-hand sides. (a) concatenation can do everything addition can, not the
# other way round; (b) addition can do everything concatenation can, not the other way round; (c) they are the same
# model. Set `prediction` to your letter and run the check; the cells after it show who was right.

# %%
# Exercise: predict — which one can express the other?
# YOUR CODE HERE
raise NotImplementedError("Exercise 5: predict — which one can express the other?")

# %%
check_prediction("07.concat_vs_add", prediction)

# %% [markdown]
# With addition the condition must squeeze through z's 128 dimensions and use z's own weights ($W_c = WP$ has rank
# at most 128, and changing $W$ for z changes it for c too); worse, $z + Pc$ cannot tell "this c" from "another
# code": shifting z by $P(c - c')$ gives the same input. The encoder side stays as it was (the condition added after
# block 3, lesson 06), so only the decoder differs. Same data and budget:

# %%
torch.manual_seed(0)
additive = ResidualVAE(decoder_condition="add", **common)
cvaelib.fit(additive, clip_train, clip_val, epochs=EPOCHS, batch_size=BATCH, device=env.device,
            checkpoint=env.checkpoint(f"07_coco_resvae_add_{SIZE}"), resume=True)
gen_add, ours_add = measure(additive)
terms = {name: cvaelib.evaluate(m, clip_val, device=env.device) for name, m in (("concat", model), ("add", additive))}
print(f"{'':36s} {'concat':>10s} {'add':>10s}")
for key in ("recon", "kl"):
    print(f"{'validation ' + key + ' (nats per photo)':36s} {terms['concat'][key]:10.1f} {terms['add'][key]:10.1f}")
for key in ours_add:
    print(f"{key:36s} {ours[key]:10.3f} {ours_add[key]:10.3f}")
show(cvaelib.show_grid(torch.cat([x_eval[:8], gen_eval[:8], gen_add[:8]]), ncols=8,
                       row_labels=["photo", "concat", "add"], title="from each photo's first caption"))

# %% [markdown]
# In SMOKE mode the two columns differ by noise. On the full data, compare the CLIP score (does the picture follow
# the caption?) and the reconstruction term: the derivation predicts concatenation cannot be worse at the same
# budget except by optimisation luck.
#
# ## 7. Why the blur?
# The decoder outputs one Bernoulli probability $p$ per pixel and is trained with the binary cross-entropy — the
# kit's `bernoulli_nll`, not a Gaussian likelihood. When z and the caption leave a pixel's true value $x$ uncertain,
# what does the best decoder paint?

# %% [markdown]
# **Predict first.** For a fixed z and caption, which output minimises the expected cross-entropy over all the
# photos that fit them? (a) the single most likely photo; (b) the pixel-wise average of all of them; (c) one of
# them, picked at random. Set `prediction` to your letter and run the check; the cells after it show who was right.

# %%
# Exercise: predict — what minimises the expected cross-entropy?
# YOUR CODE HERE
raise NotImplementedError("Exercise 6: predict — what minimises the expected cross-entropy?")

# %%
check_prediction("07.blur", prediction)

# %% [markdown]
# For one pixel, $\mathbb E_x[\ell(p)] = -\,\mathbb E[x]\log p - (1-\mathbb E[x])\log(1-p)$, and
# $\frac{d}{dp} = -\frac{\mathbb E[x]}{p} + \frac{1-\mathbb E[x]}{1-p} = 0 \Rightarrow p = \mathbb E[x]$: the best
# decoder paints the **mean** of all photos that fit — and the mean of many sharp pictures is a blurry one (a squared
# error has the same minimiser). The reconstructions of section 5 are blurry too, although the model saw the photo:
# the bottleneck (128 numbers, charged by the KL) and the per-pixel likelihood, not the text, are the limit. A larger
# latent, a smaller β or lesson 06's VGG loss sharpen things a little; they do not change the principle.

# %%
show(cvaelib.show_grid(torch.cat([x_eval[:8], reconstruct(model, encoder, x_eval[:8])]), ncols=8,
                       row_labels=["photo", "recon"], title="photo / reconstruction: detail is gone"))

# %% [markdown]
# ## 8. What the data brings with it: bias and responsible use
# A generator learns the photos and captions it is given, including their skew. COCO's photos come from Flickr —
# mostly North America and Europe, mostly what people chose to photograph — and its captions were written by crowd
# workers. Captioning models trained on COCO learned to guess gender from context such as a kitchen or a snowboard
# (Hendricks et al. 2018, "Women also Snowboard", https://arxiv.org/abs/1803.09797) and *amplified* such
# correlations beyond the training data (Zhao et al. 2017, "Men Also Like Shopping",
# https://arxiv.org/abs/1707.09457); CLIP inherits the biases of its web data (Radford et al. 2021, §7). One thing
# you can count yourself:

# %%
male = re.compile(r"\b(man|men|boy|boys|gentleman|guy|guys|he|his)\b", re.IGNORECASE)
female = re.compile(r"\b(woman|women|girl|girls|lady|ladies|she|her)\b", re.IGNORECASE)
n_male, n_female = sum(bool(male.search(c)) for c in all_captions), sum(bool(female.search(c)) for c in all_captions)
print(f"of {len(all_captions)} captions ({caption_file.name}): {n_male} mention a man or boy, {n_female} a woman or "
      f"girl ({n_male / max(n_female, 1):.1f} : 1)")

# %% [markdown]
# A text-to-image model trained on such captions draws "a person riding a horse" the way the data showed it. The
# ethics section of the COCO project among the kit's sources names two further points worth keeping: generated
# pictures make misinformation cheap — above all pictures of real people, which is why faces of identifiable people
# should not be generated without consent — and training data scraped without its creators' consent raises
# questions of credit and compensation. COCO's images carry Flickr licences (the prep script records each one);
# check them before publishing anything built from them, and label generated pictures as generated.
#
# ## 9. What came next
# - **VQ-VAE** (van den Oord et al. 2017): a *discrete* grid of codes plus an autoregressive prior over them —
#   lesson 09 measures what makes it sharper. VQGAN (Esser et al. 2021) adds an adversarial and a perceptual loss to
#   the same idea.
# - **DALL·E 2 / unCLIP** (Ramesh et al. 2022) kept this lesson's structure — CLIP image embeddings as the
#   condition, a *prior* from text to image embedding (our retrieval bridge is its nearest-neighbour stand-in) —
#   but replaced the CVAE decoder with a diffusion model.
# - **Diffusion models** (Ho et al. 2020) and **latent diffusion** (Rombach et al. 2022, Stable Diffusion) generate
#   by removing noise step by step; they are what text-to-image means today.
#
# **Open questions**
# 1. Set `SIZE = 128` and retrain (a T4 runs it at roughly a quarter of the 64×64 speed).  Does SSIM improve or
#    get worse?  Why would a bigger image make the per-pixel average *more* blurry?
# 2. Compare `bridge="direct"` with the default retrieval bridge by CLIP score.  Which one matches the caption
#    better, and which one looks more like a photo?
# 3. Change the theme: prepare a subset with other keywords (`python -m data_prep.coco --keywords ...`) — e.g.
#    food or trains — run `compare_filters` on its captions first, and compare FID.
#
# **Takeaway:** a CLIP-CVAE draws the gist of a caption — colours and layout — but a per-pixel likelihood averages
# away detail; measure with care (whole-word filters, captions not image embeddings, enough images for FID), and
# remember what the data carries.
#
# ## What's next
# [08 · CLIP-guided latent optimisation](08_clip_guided.ipynb): steer a decoder toward a prompt by optimising its
# latent, and [09 · VQ-VAE](09_vqvae.ipynb): discrete codes, sharp reconstructions and a prior trained afterwards.
