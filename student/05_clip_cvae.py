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
# # 05 · CLIP-conditioned CVAE: draw what a sentence says
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course-kit/cvae-course-kit/blob/main/student/05_clip_cvae.ipynb)
#
# > **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each exercise tells you what is wrong and gives a hint.
#
# **You will learn**
# - how CLIP's symmetric contrastive loss with a temperature puts texts and images into one space - and why they
#   still live in different regions of it (the "modality gap");
# - how a CVAE trained on *image* embeddings only can be steered by *text*, once a bridge crosses that gap, and how
#   to measure what a bridge gets right and what it merely copies from the training set;
# - five ways to use one model: text → image, image → image, attribute manipulation, interpolation, reconstruction.
#
# **Prerequisites:** lesson 03 (the class-conditional VAE).
# **Runtime:** about 4 min on a 2-core CPU (measured: 2.3 min of CPU time, plus 1.5 min once for TinyCLIP), about
# 2 min on a Colab T4; `SMOKE=1`: about 20 s of CPU time.  With real CLIP (`CLIP = "ViT-B/32"`) use a Colab T4:
# embedding the 60,000 training images is most of the run.
#
# Data: MNIST (LeCun, Cortes & Burges, 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017,
# https://arxiv.org/abs/1708.07747, MIT licence).  Papers: CLIP (Radford et al. 2021,
# https://arxiv.org/abs/2103.00020), LAFITE (Zhou et al. 2022, https://arxiv.org/abs/2111.13792), DALL·E 2
# (Ramesh et al. 2022, https://arxiv.org/abs/2204.06125), the modality gap (Liang et al. 2022,
# https://arxiv.org/abs/2203.02053), CLIP score (Hessel et al. 2021, https://arxiv.org/abs/2104.08718).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

# ---- the one switch: which CLIP --------------------------------------------------------------------------------
# "tiny":     the kit's TinyCLIP (64-d, trained on MNIST with generated captions; offline, 1.5 min on a CPU, cached)
# "ViT-B/32": OpenAI's CLIP (512-d, a ~340 MB download: use Colab with a GPU; offline without its weights the
#             next cells stop with one line saying where to put them)
CLIP = "tiny"

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)
    if CLIP != "tiny":  # OpenAI's clip package (cvaelib.clip.load_clip falls back to open_clip if it fails)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "git+https://github.com/openai/CLIP.git"], check=True)

import math
import random

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import cvaelib
from cvaelib.classifier import predict
from cvaelib.clip import captions as cap
from cvaelib.clip import load_clip
from cvaelib.clip.tiny import class_text_embeddings, save_tiny_clip, zero_shot_accuracy
from cvaelib.clip_generate import (generate_from_images, generate_from_text, interpolate, load_clip_cvae,
                                   logit_scale, manipulate, prompt_accuracy, reconstruct, train_clip_cvae)
from cvaelib.notebook import setup, show, show_source
from cvaelib.teach import check_prediction

env = setup(seed=0)  # device, SMOKE flag, data folder
DATASET = "mnist"
BETA = 1.0                                      # KL weight of the CVAE (section 5 explains the choice)
LIMIT = 3000 if env.smoke else None             # training images of the CVAE (None: all 60,000)
CVAE_EPOCHS = 10 if env.smoke else 5
N_PER_PROMPT = 8 if env.smoke else 16           # samples per prompt when measuring

# %% [markdown]
# ### What changes with real CLIP
# Everything below runs with either CLIP and prints its own numbers. With `CLIP = "ViT-B/32"`:
# embeddings have 512 dimensions instead of 64; the model has seen 400 million web photos with their alt-texts but
# almost no handwritten digits (Radford et al. 2021 name MNIST among the datasets where zero-shot CLIP is weak - a
# logistic regression on raw pixels beats it), so zero-shot accuracy in section 3 drops; its learned temperature is
# τ = 0.01 (TinyCLIP learns about 0.07); and real CLIP's texts and images sit far apart (Liang et al. 2022 measure
# the gap across CLIP models), so expect the direct bridge to suffer more and the bridges of section 6 to matter more. TinyCLIP is the kit's stand-in for a
# classroom without a GPU or a network: the same two-tower design and loss, trained here on captions generated from
# the labels.

# %% [markdown]
# ## 1. Why CLIP?
# A class-conditional VAE (lesson 03) understands exactly ten words: the class ids.  To draw "a *thick* seven" or
# "a pair of *running shoes*" we need a condition that comes from language.  CLIP trains two encoders - one for
# images, one for texts - so that an image and its caption get embeddings with a high cosine similarity and
# mismatched pairs a low one.  After training both live in **one shared space**: a text can stand in for an image.
#
# The kit's **TinyCLIP** has CLIP's real BPE tokenizer, a 2-layer text transformer and a small CNN, and learns from
# captions *generated* from the labels with many templates, synonyms and visual descriptors measured on each image:

# %%
full_train = cvaelib.load_dataset(DATASET, env.data_root, "train", download=env.download)
test = cvaelib.load_dataset(DATASET, env.data_root, "test", download=env.download)
train = full_train.take(slice(0, LIMIT)) if LIMIT else full_train  # exactly the images the CVAE will see
if env.smoke:
    test = cvaelib.subset(test, 500)
desc = cap.image_descriptors(DATASET, train.images[:8], train.labels[:8])
rng = random.Random(0)
texts = [cap.caption(DATASET, int(train.labels[i]), {k: int(v[i]) for k, v in desc.items()}, rng=rng)
         for i in range(8)]
show(cvaelib.show_grid(train.float_images()[:8], titles=texts, ncols=4))

# %% [markdown]
# ## 2. CLIP's loss, derived
# Take a batch of $B$ matching pairs: text embeddings $t_1..t_B$ and image embeddings $v_1..v_B$, all of unit
# length.  Their cosines form a $B \times B$ matrix $S_{ij} = t_i \cdot v_j$; the diagonal holds the true pairs.
# Read row $i$ as a classification problem - *which of the $B$ images belongs to text $i$?* - with logits $S_{ij}/\tau$:
#
# $$ p(v_j \mid t_i) = \frac{\exp(S_{ij}/\tau)}{\sum_{k=1}^{B} \exp(S_{ik}/\tau)}, \qquad
# \mathcal L_{t\to v} = -\frac1B \sum_{i=1}^{B} \log p(v_i \mid t_i). $$
#
# Reading the *columns* the same way (which text belongs to image $j$?) gives $\mathcal L_{v\to t}$, and CLIP
# minimises their mean, $\mathcal L = \tfrac12(\mathcal L_{t\to v} + \mathcal L_{v\to t})$ - the *symmetric*
# contrastive loss (Radford et al. 2021, Figure 3).  The **temperature** $\tau$ (CLIP learns it as
# `logit_scale` $= 1/\tau$) sets how sharp the softmax is.  Cosines live in $[-1, 1]$, so without it the logits
# could never differ by more than 2.
#
# **Predict first (exercise 1).** With $\tau = 1$ and a batch of $B$ pairs, can the loss reach 0?  Answer with a
# letter: (a) yes, if the text and image embeddings match perfectly; (b) no, it stays above
# $\log(1 + (B-1)e^{-2})$; (c) no, it stays above $\log B$.

# %%
# Exercise: predict - can CLIP's loss reach 0 with tau = 1?
# answer with one letter: prediction = "a", "b" or "c"
# YOUR CODE HERE
raise NotImplementedError("Exercise 1: predict - can CLIP's loss reach 0 with tau = 1?")

# %%
check_prediction("05.tau", prediction)

# %% [markdown]
# ### Exercise 2 · The cosine-similarity matrix
# Write $S$ for embeddings that are *not* normalised yet: rows of `text_emb` `[T, D]` are texts, rows of `image_emb`
# `[I, D]` images; return the `[T, I]` matrix of cosine similarities (normalise every row to unit length, then
# multiply).  The rest of the lesson draws and measures the shared space with your function.

# %%
def similarity_matrix(text_emb, image_emb):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 2: The cosine-similarity matrix")


# %%
from cvaelib.teach import check_similarity_matrix

check_similarity_matrix(similarity_matrix)

# %% [markdown]
# ### Exercise 3 · CLIP's symmetric loss
# Write $\mathcal L$ above with your `similarity_matrix`: logits $S/\tau$, the right partner of row $i$ is column
# $i$, and average the cross-entropies of both directions (`F.cross_entropy` takes logits and class indices).

# %%
def clip_loss(text_emb, image_emb, tau):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 3: CLIP's symmetric loss")


# %%
from cvaelib.teach import check_clip_loss

check_clip_loss(clip_loss)

# %% [markdown]
# ## 3. A CLIP to work with
# TinyCLIP trains with your loss, with one change the generated captions allow: two captions of the same class are
# *both* right for an image, so its targets spread over all same-class pairs instead of the diagonal alone (see
# `cvaelib/clip/tiny.py`).  Word pieces it never saw read as one shared `<unk>` embedding, and training sprinkles
# `<unk>` into captions, so unseen words ("a *blurry* photo of ...") do not derail it.  It trains once for 300 steps
# and is cached: re-running this cell loads it.  In SMOKE mode the cached one is loaded when present (the kit's
# tests build the same one); only without a cache does a 30-step stand-in train, and the numbers below then sit
# near chance.

# %%
if CLIP != "tiny":
    encoder = load_clip(CLIP, device=env.device)  # offline without cached weights: one KitError saying what to do
else:
    encoder = env.tiny_clip(DATASET, train)  # the kit's standard TinyCLIP (300 steps), cached
TAU = 1 / logit_scale(encoder)
print(encoder, getattr(encoder, "meta", ""), f"\nlearned temperature tau = {TAU:.3f}")

# %% [markdown]
# **Zero-shot classification.**  Without ever training a classifier: embed "a photo of a {class}" for every class
# (with *held-out* templates TinyCLIP never saw, averaged over synonyms) and give each test image the class whose
# text is most similar.

# %%
env.smoke_banner("MNIST: zero-shot 98.8 % on the 10,000 test images (the cached 300-step TinyCLIP); the bridge table (all "
                 "60,000 images, 5 CVAE epochs, 16 samples x 40 prompts): direct 75 %, shift 90 %, retrieval with "
                 "cosine or contrastive ranking 98 % (0 % copies), plus the neighbour's code 99.5 % with 51 % "
                 "copies; judge 99.3 % on real digits (measured on a 2-core CPU)")
if DATASET in cap.SYNONYMS:
    acc, per_class = zero_shot_accuracy(encoder, test, DATASET)
    print(f"zero-shot accuracy on {len(test)} test images: {acc:.1%}")
    print("  ".join(f"{n}: {a:.0%}" for n, a in zip(test.class_names, per_class)))

# %% [markdown]
# **Your loss on real pairs.** One test image per class with a caption of its own (so each batch has exactly one
# right partner per row), 20 batches: CLIP's loss with the learned $\tau$, with $\tau = 1$, and the floor your
# prediction was about.

# %%
g = torch.Generator().manual_seed(0)
by_class = [(test.labels == k).nonzero()[:, 0] for k in range(test.num_classes)]
batches = []
for _ in range(20):
    idx = torch.stack([rows[torch.randint(len(rows), (1,), generator=g)][0] for rows in by_class])
    captions = [cap.caption(DATASET, int(test.labels[i]), rng=rng) for i in idx]
    batches.append((encoder.encode_text(captions), encoder.encode_images(test.float_images()[idx])))
B = len(by_class)
with torch.no_grad():
    for name, tau in ((f"learned tau = {TAU:.3f}", TAU), ("tau = 1", 1.0)):
        matched = sum(float(clip_loss(t, v, tau)) for t, v in batches) / len(batches)
        shuffled = sum(float(clip_loss(t[torch.randperm(B, generator=g)], v, tau)) for t, v in batches) / len(batches)
        print(f"{name:22s} matched pairs {matched:.3f}   shuffled pairs {shuffled:.3f}")
print(f"chance level log B = {math.log(B):.3f}; lowest possible with tau = 1: log(1 + (B - 1) e^-2) = "
      f"{math.log(1 + (B - 1) * math.exp(-2)):.3f}")

# %% [markdown]
# ## 4. The shared space, as a picture
# Rows: one prompt per class.  Columns: one test image per class.  Each cell is the cosine similarity of a text
# embedding and an image embedding - your `similarity_matrix`.  A bright diagonal means every prompt found its
# picture.

# %%
first = [int((test.labels == k).nonzero()[0]) for k in range(test.num_classes)]
prompts = [v[0] for v in cap.example_prompts(DATASET).values()]
sim = similarity_matrix(encoder.encode_text(prompts), encoder.encode_images(test.float_images()[first]))
fig, ax = plt.subplots(figsize=(7, 6))
im = ax.imshow(sim, cmap="viridis")
ax.set_yticks(range(len(prompts)), prompts)
ax.set_xticks(range(len(first)), [test.class_names[k] for k in range(len(first))], rotation=60)
fig.colorbar(im, label="cosine similarity")
ax.set_title("text (rows) vs image (columns)")
show(fig)

# %% [markdown]
# **Predict first (exercise 4).** Which pair is more similar: (a) the text "a handwritten seven" and a picture of
# a seven, (b) two pictures of sevens, or (c) about the same?

# %%
# Exercise: predict - text and image, or two images?
# answer with one letter: prediction = "a", "b" or "c"
# YOUR CODE HERE
raise NotImplementedError("Exercise 4: predict - text and image, or two images?")

# %%
check_prediction("05.gap", prediction)

# %% [markdown]
# The numbers, for the same class and for different classes (different classes are the yardstick: a match has to
# beat them):

# %%
sub = test.take(slice(0, 2000))  # 2,000 test images are plenty for averages
img = encoder.encode_images(sub.float_images())
txt_by_class = [encoder.encode_text(cap.class_prompts(DATASET, k)) for k in range(test.num_classes)]
txt = torch.cat(txt_by_class)
txt_labels = torch.cat([torch.full((len(t),), k) for k, t in enumerate(txt_by_class)])
same_ii = sub.labels[:, None] == sub.labels[None, :]
off_diag = ~torch.eye(len(img), dtype=torch.bool)
S_ii, S_ti = similarity_matrix(img, img), similarity_matrix(txt, img)
same_ti = txt_labels[:, None] == sub.labels[None, :]
print(f"{'':16s}{'same class':>12s}{'other class':>13s}")
print(f"{'image - image':16s}{float(S_ii[same_ii & off_diag].mean()):12.2f}{float(S_ii[~same_ii].mean()):13.2f}")
print(f"{'text - image':16s}{float(S_ti[same_ti].mean()):12.2f}{float(S_ti[~same_ti].mean()):13.2f}")
# one direction separates the two kinds of embedding: project on (image centre - text centre)
gap = F.normalize(img.mean(0) - txt.mean(0), dim=0)
cut = 0.5 * float((img @ gap).mean() + (txt @ gap).mean())
sep = 0.5 * (float((img @ gap > cut).float().mean()) + float((txt @ gap < cut).float().mean()))
print(f"one direction tells a text from an image for {sep:.0%} of the embeddings "
      f"(|image centre - text centre| = {float((img.mean(0) - txt.mean(0)).norm()):.2f})")

# %% [markdown]
# A text lands closer to its own class's images than to the others - that is what zero-shot classification uses -
# but never *on* them: texts and images occupy different regions of the sphere, separated along one direction.
# This is the **modality gap** (Liang et al. 2022): the loss of section 2 only asks a text to beat the *other texts*
# for its image, never to coincide with it.  It matters for what comes next.
#
# ## 5. The CLIP-conditioned CVAE
# The condition is now a CLIP embedding.  It enters the encoder (at a point you choose: `injection="down2"`,
# `"hidden"` or `"input"`) and is concatenated to z in the decoder.  Training needs **no captions at all**: the
# condition of each training image is its own *image* embedding (LAFITE's "language-free" training).
#
# **Standardised conditions.**  Before the networks read it, $c$ is standardised per dimension,
# $\tilde c_d = (c_d - m_d)/s_d$, with the mean $m_d$ and standard deviation $s_d$ of the training images'
# embeddings (`set_condition_stats`).  A unit vector spreads its length over all $D$ dimensions, so its entries are
# small, while z's entries are N(0, 1); standardised, the condition reaches the first layer on the same scale as z.
# It has a price that matters for text: a dimension in which all images agree gets a small $s_d$, so a text that
# differs there becomes a far outlier.

# %%
show_source(cvaelib.models.clip_cvae.ClipConditionalVAE.encode)
emb_train = encoder.encode_images(train.float_images()[:2000])
cond_mean, cond_std = emb_train.mean(0), emb_train.std(0)
print(f"per-dimension std of the training conditions: {float(cond_std.min()):.3f} .. {float(cond_std.max()):.3f} "
      f"(z: 1.0)")
far = ((txt.mean(0) - cond_mean) / cond_std).abs()
print(f"after standardising, the mean text embedding lies {float(far.pow(2).mean().sqrt()):.1f} standard deviations "
      f"from the mean image embedding (root mean square over dimensions; {float(far.max()):.1f} in the worst one)")

# %% [markdown]
# Does it matter?  Measured on a 2-core CPU (all 60,000 MNIST images, 5 epochs, the cached TinyCLIP; yours will
# differ), with and without it.  At the library's default β = 0.1 it decides whether the decoder listens to the
# condition at all: decoding a test image's code with *another* image's embedding gave that other digit 89 % of the
# time with it and 50 % without (the decoder leans on z), and retrieval without copied codes (section 6) drew the
# prompted digit 93 % vs 71 % of the time.  At β = 1 (this lesson's choice, below) z carries less and the
# standardisation becomes a trade between bridges: 95 % vs 94 % on the swap, retrieval 98 % vs 95.5 %, but the
# direct bridge 75 % vs 85 % - the price above.

# %% [markdown]
# **β.**  The loss is the negative ELBO of lesson 02, $\mathcal L = \text{recon} + \beta\,\text{KL}$.  Here the
# condition is the image's own embedding and already describes it in detail (class, thickness, slant), so a small
# β lets z carry the rest of the picture: sharp reconstructions, but codes that do not fill N(0, I), a decoder that
# leans on z, and z ~ N(0, I) samples that look less like the prompt.  `train_clip_cvae` defaults to β = 0.1; this
# lesson trains with β = `BETA` = 1, because text → image is its point.  Measured on a 2-core CPU (all 60,000
# MNIST images, 5 epochs, the cached TinyCLIP; yours will differ): β = 0.1 / 1 gave test reconstruction SSIM 0.93 /
# 0.89; decoding a test image's code with another image's embedding gave that other digit 89 % / 95 % of the time;
# retrieval without copying codes (section 6) drew the prompted digit 93 % / 98 % of the time.
#
# **LAFITE's noise.**  The decoder only ever sees image embeddings, yet it will be asked about bridged texts,
# mixtures and interpolations.  So training perturbs each condition (Zhou et al. 2022):
#
# $$ c' = \frac{c + \xi\,\lVert c\rVert\,\epsilon/\lVert\epsilon\rVert}{\lVert c + \xi\,\lVert c\rVert\,\epsilon/\lVert\epsilon\rVert\rVert},
# \qquad \epsilon \sim \mathcal N(0, I), $$
#
# noise of length $\xi\lVert c\rVert$ in a uniformly random direction: the angle it turns $c$ by does not depend on
# $\lVert c\rVert$, and every row gets its own $\epsilon$.
#
# ### Exercise 5 · LAFITE's noise
# Write the perturbation for a batch of conditions `c` `[N, D]` (rows of any length).

# %%
def perturb(c, xi):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 5: LAFITE's noise")


# %%
from cvaelib.teach import check_perturb_condition

check_perturb_condition(perturb)

# %% [markdown]
# How far does your noise move an embedding, compared with the gap?  For a few ξ: the cosine between an image
# embedding and its perturbed copy, and how often the copy still has its own class nearest in zero-shot terms.

# %%
protos = class_text_embeddings(encoder, DATASET) if DATASET in cap.SYNONYMS else None
for xi in (0.1, 0.3, 0.6):
    moved = perturb(img, xi)
    keep = f"; zero-shot class kept {float(((moved @ protos.T).argmax(1) == sub.labels).float().mean()):.0%}" \
        if protos is not None else ""
    print(f"xi = {xi}: cos(c, c') = {float((moved * img).sum(-1).mean()):.3f}{keep}")
print(f"text - image of the same class: cos = {float(S_ti[same_ti].mean()):.3f}")

# %% [markdown]
# The training noise ($\xi = 0.1$) keeps every embedding almost where it was: it teaches the decoder a small
# neighbourhood of each image embedding, not the road to where the texts are.  Noise large enough to reach the
# texts would also blur the classes.  Crossing the gap needs a **bridge** (section 6).
#
# `train_clip_cvae` embeds the images, trains the CVAE with `fit` (a progress bar per epoch), and stores in the
# checkpoint a bank of up to 10,000 training image embeddings with each image's latent code, plus the centres of
# the image and text embeddings.  A finished run is loaded instead of trained again.

# %%
tag = "tiny" if CLIP == "tiny" else CLIP.replace("/", "-")
run_dir = env.work_dir / f"05_clip_cvae_{DATASET}_{tag}_beta{BETA}{'_smoke' if env.smoke else ''}"
if (run_dir / "checkpoint.pt").exists():
    model, encoder = load_clip_cvae(run_dir, env.device)  # trained before: load
else:
    if CLIP == "tiny":
        save_tiny_clip(encoder, run_dir / "tinyclip.pt")  # the run folder keeps the CLIP it was trained with
    run = train_clip_cvae(DATASET, run_dir, env.data_root, clip=CLIP, epochs=CVAE_EPOCHS, max_seconds=None,
                          limit=LIMIT, beta=BETA, device=env.device)
    model, encoder = run["model"], run["encoder"]
    show(cvaelib.plot_history(run["history"]))
model = model.cpu().eval()

# %% [markdown]
# ## 6. Text → image: bridges across the gap
# Feeding the *text* embedding straight in (`bridge="direct"`) asks the decoder about a region it never saw.  Two
# ways across:
#
# * **shift**: move the text by the mean gap vector, $\hat c = \mathrm{normalise}(t + \mu_{\text{image}} -
#   \mu_{\text{text}})$, with the centres $\mu$ of the training image embeddings and of many captions;
# * **retrieval**: find the $k$ training image embeddings the text describes best and condition each sample on one
#   of them - real image embeddings, the decoder's home ground (a nearest-neighbour stand-in for DALL·E 2's learned
#   text-to-image prior).  *Describes best* is not "most similar": an image that is close to *every* text ranks high
#   on plain cosine.  Rank instead by CLIP's own classification of the image among the prompt and one reference text
#   per class - the softmax of section 2, read image by image:
#
# $$ \log p(\text{prompt} \mid v) = \log \frac{\exp(s\,v\cdot t)}{\exp(s\,v\cdot t) + \sum_{k} \exp(s\,v\cdot r_k)},
# \qquad s = 1/\tau. $$
#
# ### Exercise 6 · The shift bridge
# `text_emb` `[N, D]` (unit rows), `image_center` and `text_center` `[D]`: return the shifted, unit-length rows.

# %%
def shift_bridge(text_emb, image_center, text_center):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 6: The shift bridge")


# %%
from cvaelib.teach import check_shift_bridge

check_shift_bridge(shift_bridge)

# %% [markdown]
# ### Exercise 7 · Contrastive ranking
# `bank` `[M, D]` (unit image embeddings), `text` `[D]`, `ref_texts` `[K, D]` (one per class) and `scale` $= 1/\tau$:
# return $\log p(\text{prompt} \mid v)$ for every bank row, `[M]`.

# %%
def contrastive_scores(bank, text, ref_texts, scale):
    # YOUR CODE HERE
    raise NotImplementedError("Exercise 7: Contrastive ranking")


# %%
from cvaelib.teach import check_contrastive_ranking

check_contrastive_ranking(contrastive_scores)

# %% [markdown]
# The kit's retrieval bridge does one more thing: it starts z from the retrieved neighbour's *own latent code* plus
# noise (`z_noise=0.5`) instead of N(0, I), so z and the condition agree as they did in training.
#
# **Predict first (exercise 8).** Count the samples whose nearest training image is the very image the bridge
# retrieved.  With the neighbour's embedding *and* its code there are (a) many more than with a fresh z: near-copies;
# (b) about as many as with a fresh z: the code only adds variety; (c) none: the noise on the code makes every
# sample new.

# %%
# Exercise: predict - how many samples copy the retrieved training image?
# answer with one letter: prediction = "a", "b" or "c"
# YOUR CODE HERE
raise NotImplementedError("Exercise 8: predict - how many samples copy the retrieved training image?")

# %%
check_prediction("05.copy", prediction)

# %% [markdown]
# The bridge table uses your `shift_bridge` and `contrastive_scores`.  For every bridge, an independent classifier
# (the kit's judge, trained on real digits) checks whether the samples show the prompted digit, for prompts a
# student would type.  Two more columns measure **memorisation**: the share of samples whose nearest training image
# (in pixels) is the very image the bridge retrieved ("copies"), and the pixel distance (RMSE) from each sample to
# its nearest training image.  Decoded images are smoother than real ones, which alone brings them nearer the
# training set, so the fair yardstick for that distance is a *new* digit passed through the same decoder: test digits,
# reconstructed.

# %%
judge = env.judge(DATASET, train)
judge_acc = float((predict(judge, test.float_images()) == test.labels).float().mean())
pool = train.float_images()  # the CVAE's training images (and its validation split)
bank, bank_z = model.bank_embeddings(), model.bank_z[:int(model.bank_count)]
K = 64


def conditions(prompt, n, g, bridge):
    """Conditions and latents for n samples of `prompt` through one bridge (your functions where they exist)."""
    t = encoder.encode_text([prompt])[0]
    rows = None
    if bridge == "direct":
        c = t.expand(n, -1)
    elif bridge == "shift (yours)":
        c = shift_bridge(t[None], model.image_center, model.text_center).expand(n, -1)
    else:
        score = bank @ t if "cosine" in bridge else contrastive_scores(bank, t, model.ref_text, float(model.ref_scale))
        top = score.topk(K).indices
        rows = top[torch.randint(0, K, (n,), generator=g)]
        c = bank[rows]
    eps = torch.randn(n, model.latent_dim, generator=g)
    return c, (bank_z[rows] + 0.5 * eps if "code" in bridge else eps)


def nearest_training_image(images):
    """(RMSE to the nearest training image, that image's index) for every image."""
    d = torch.cdist(images.flatten(1), pool.flatten(1)) / math.sqrt(pool[0].numel())
    return d.min(1)


BRIDGE_ROWS = ["direct", "shift (yours)", "retrieval, cosine ranking", "retrieval, your ranking",
               "retrieval, your ranking + code"]
example = cap.example_prompts(DATASET)
table, grid = {}, []
for bridge in BRIDGE_ROWS:
    hits, dists, copies = [], [], []
    for label, prompt_list in example.items():
        for j, prompt in enumerate(prompt_list):
            c, z = conditions(prompt, N_PER_PROMPT, torch.Generator().manual_seed(j), bridge)
            with torch.no_grad():
                images = torch.sigmoid(model.decode(z, c))
            hits.append(predict(judge, images) == label)
            dist, index = nearest_training_image(images)
            dists.append(dist)
            copies.append((encoder.encode_images(pool[index]) * c).sum(-1) > 0.9999)  # its embedding was retrieved
            if label == 7 and j == 0:
                grid.append(images)
    table[bridge] = [float(torch.cat(v).float().mean()) for v in (hits, dists, copies)]
print(f"judge accuracy on real test digits: {judge_acc:.1%}\n")
print(f"{'bridge':32s}{'right digit':>12s}{'RMSE to nearest train':>23s}{'copies':>8s}")
for bridge, (acc, dist, copy) in table.items():
    print(f"{bridge:32s}{acc:12.1%}{dist:23.3f}{copy:8.0%}")
x_new = test.float_images()[:500]
print(f"{'test digits, reconstructed':32s}{'':12s}{float(nearest_training_image(reconstruct(model, encoder, x_new))[0].mean()):23.3f}")
print(f"{'test digits':32s}{'':12s}{float(nearest_training_image(x_new)[0].mean()):23.3f}")
show(cvaelib.show_grid(torch.cat(grid), ncols=N_PER_PROMPT, row_labels=BRIDGE_ROWS, title=example[7][0]))

# %% [markdown]
# Read the table from the top: the direct text embedding is the weakest condition, your shift recovers part of the
# gap, and retrieving real image embeddings does best.  The last row is the kit's default
# (`generate_from_text(..., bridge="retrieval")`): its samples sit nearest the training set, and many of them are
# nearest to the very image whose embedding and code were retrieved - whatever it gains over the row above (same
# conditions, fresh z) is retrieval, not generation.  A full run (the numbers under the SMOKE banner) shows it most
# clearly.
#
# Your functions are the kit's: the library's bridges draw the same images.

# %%
t7 = encoder.encode_text([example[7][0]])[0]
from cvaelib.conditioning.bridge import text_anchor

print("your shift == bridge='shift':",
      torch.allclose(shift_bridge(t7[None], model.image_center, model.text_center)[0],
                     text_anchor(model, encoder, t7, "shift"), atol=1e-5))
kit = prompt_accuracy(model, encoder, example, judge, n=N_PER_PROMPT, bridge="retrieval")
print(f"generate_from_text(bridge='retrieval'), judged: {kit['overall']:.2%}; your ranking + code: "
      f"{table['retrieval, your ranking + code'][0]:.2%}; the same: "
      f"{math.isclose(kit['overall'], table['retrieval, your ranking + code'][0], abs_tol=1e-6)}")
show_source(cvaelib.conditioning.bridge.retrieve)

# %% [markdown]
# A second number that needs no classifier: the **CLIP score**, the cosine between a prompt's text embedding and
# the image embedding of what was generated for it (Hessel et al. 2021).  Real images of the class set the level
# to aim for.

# %%
from cvaelib.metrics import clip_score

first_prompts = [example[k][0] for k in sorted(example)]
t_emb = encoder.encode_text(first_prompts)
generated = torch.cat([generate_from_text(model, encoder, p, 4, seed=0) for p in first_prompts])
real = torch.cat([test.float_images()[test.labels == k][:4] for k in sorted(example)])
print(f"CLIP score, generated {float(clip_score(encoder.encode_images(generated), t_emb.repeat_interleave(4, 0))):.3f}"
      f" vs real images of the named class {float(clip_score(encoder.encode_images(real), t_emb.repeat_interleave(4, 0))):.3f}"
      f" ({len(generated)} images each)")

# %% [markdown]
# ## 7. Try your own prompt
# The widget only wires a text box to the library function `generate_from_text`.

# %%
import ipywidgets as widgets
from IPython.display import display

box = widgets.Text(value="a thick seven" if DATASET == "mnist" else example[7][0], description="prompt")
bridge_menu = widgets.Dropdown(options=["retrieval", "shift", "direct"], value="retrieval", description="bridge")
button = widgets.Button(description="Draw")
output = widgets.Output()


def on_click(_):
    with output:
        output.clear_output(wait=True)
        try:
            images = generate_from_text(model, encoder, box.value, 16, seed=0, bridge=bridge_menu.value)
            show(cvaelib.show_grid(images, ncols=8, title=box.value))
        except cvaelib.KitError as exc:
            print(exc)


button.on_click(on_click)
display(widgets.HBox([box, bridge_menu, button]), output)
on_click(None)

# %% [markdown]
# ## 8. Image → image, attribute manipulation, interpolation, reconstruction
# **Image → image:** condition on the embedding of a given image, draw new z: same content, new style.

# %%
x = test.float_images()[:6]
show(cvaelib.show_grid(torch.cat([x, generate_from_images(model, encoder, x, n_per_image=1, seed=1),
                                  generate_from_images(model, encoder, x, n_per_image=1, seed=2)]),
                       ncols=6, title="top: given images; below: new samples with their embeddings"))

# %% [markdown]
# **Attribute manipulation** (the sources' `attribute_manipulation(text, image_embed_factor)`): mix the image's
# embedding with the bridged text, $c = \mathrm{normalise}(f\,c_\text{image} + (1-f)\,c_\text{text})$, and decode
# with the image's *own* z, so the handwriting stays while the content moves.

# %%
target = example[3][0]
steps = [manipulate(model, encoder, x, target, image_embed_factor=f) for f in (1.0, 0.75, 0.5, 0.25, 0.0)]
show(cvaelib.show_grid(torch.cat(steps), ncols=6, title=f"toward '{target}', image factor 1 -> 0 (rows)"))

# %% [markdown]
# **Interpolation** between two prompts (or two images): conditions follow the great circle between the two
# embeddings.

# %%
a, b = example[1][0], example[8][0]
show(cvaelib.show_grid(torch.cat([interpolate(model, encoder, a, b, steps=8, seed=0),
                                  interpolate(model, encoder, x[0], x[1], steps=8)]), ncols=8,
                       title=f"'{a}' -> '{b}'; image -> image"))

# %% [markdown]
# **Reconstruction**: encode and decode each image with its own embedding.

# %%
show(cvaelib.show_grid(torch.cat([x, reconstruct(model, encoder, x)]), ncols=6, title="input / reconstruction"))

# %% [markdown]
# ## 9. Your turn: Fashion-MNIST
# Set `DATASET = "fashion-mnist"` in the setup cell and run everything again.  Try synonyms ("a pair of
# trainers", "a parka", "flip-flops", "jeans") and descriptors ("a dark coat").  On the command line:
#
# ```
# python -m cvaelib train --model clip-cvae --dataset fashion-mnist --clip tiny --max-seconds 60 --out runs/fclip
# python -m cvaelib generate --checkpoint runs/fclip --prompt "a pair of sneakers" --n 16 --out sneakers.png
# ```
#
# **Open questions**
# 1. Which fashion prompts fail most often with `bridge="direct"`?  Which class does `contrastive_scores` really
#    retrieve for them?
# 2. Change `K` from 64 to 512 in the bridge table.  What happens to the copies and to the accuracy?
# 3. Set `BETA = 0.1` (the library's default) and rerun sections 5-6: which columns of the bridge table move?
#
# **Takeaway:** CLIP gives one space for words and pictures, but texts and images stay apart in it; a CVAE
# trained on image embeddings alone draws from text once a bridge moves the text to where image embeddings live -
# and a bridge that also hands over a training image's code mostly redraws that image.
#
# ## What's next
# [06 · Faces from words](06_celeba_clip_cvae.ipynb) scales the idea to 64×64 colour faces with a residual VAE
# and real CLIP.
