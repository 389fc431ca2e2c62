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
# > **Instructor version: solutions included.** Students work in the student version (the Colab badge opens it; `python -m cvaelib.teach student` regenerates it).
#
# **You will learn**
# - how CLIP puts texts and images into one space where "a handwritten seven" lies near pictures of sevens;
# - how a CVAE trained on *image* embeddings only can be steered by *text* - once a bridge crosses the
#   "modality gap" between the two kinds of embeddings;
# - five ways to use one model: text → image, image → image, attribute manipulation, interpolation, reconstruction.
#
# **Prerequisites:** lesson 03 (the class-conditional VAE).
# **Runtime:** about 5 min on a laptop CPU (TinyCLIP 2.5 min + CVAE 1 min per dataset), 2 min on a Colab T4
# (`SMOKE=1`: seconds).
#
# Data: MNIST (LeCun, Cortes & Burges, 1998) and Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017,
# https://arxiv.org/abs/1708.07747, MIT licence).  Papers: CLIP (Radford et al. 2021,
# https://arxiv.org/abs/2103.00020), LAFITE (Zhou et al. 2022, https://arxiv.org/abs/2111.13792), DALL·E 2
# (Ramesh et al. 2022, https://arxiv.org/abs/2204.06125), the modality gap (Liang et al. 2022,
# https://arxiv.org/abs/2203.02053).

# %%
# Setup: on Colab install the kit (never torch: Colab has it); elsewhere run from a checkout with `pip install -e .`
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "cvaelib @ git+https://github.com/cvae-course-kit/cvae-course-kit.git"], check=True)

import torch

import cvaelib
from cvaelib.clip import captions as cap
from cvaelib.clip.tiny import get_tiny_clip, train_tiny_clip, zero_shot_accuracy
from cvaelib.clip_generate import (generate_from_images, generate_from_text, interpolate, load_clip_cvae,
                                   manipulate, prompt_accuracy, reconstruct, train_clip_cvae)
from cvaelib.notebook import setup, show, show_source

env = setup(seed=0)  # device, SMOKE flag, data folder
# Switch: True uses OpenAI's CLIP ViT-B/32 (512-d embeddings; downloads ~340 MB, so Colab with a GPU), False the
# kit's TinyCLIP trained right here (64-d, works offline).
USE_REAL_CLIP = False and env.in_colab
DATASET = "mnist"
TINY_SECONDS = 150.0
CVAE_EPOCHS = 1 if env.smoke else 5

# %% [markdown]
# ## 1. Why CLIP?
# A class-conditional VAE (lesson 03) understands exactly ten words: the class ids.  To draw "a *thick* seven" or
# "a pair of *running shoes*" we need a condition that comes from language.  CLIP trains two encoders - one for
# images, one for texts - so that an image and its caption get embeddings with a high cosine similarity and
# mismatched pairs a low one.  After training, both live in **one shared space**: a text can stand in for an
# image.
#
# Real CLIP learned from 400 million web image-text pairs; we cannot download it in every classroom, so the kit
# trains a **TinyCLIP** in 2-3 minutes: CLIP's real BPE tokenizer, a 2-layer text transformer, a small CNN, and
# captions *generated* from the labels with many templates, synonyms and visual descriptors measured on each image:

# %%
train = cvaelib.load_dataset(DATASET, env.data_root, "train", download=env.download)
test = cvaelib.load_dataset(DATASET, env.data_root, "test", download=env.download)
if env.smoke:
    train, test = cvaelib.subset(train, 3000), cvaelib.subset(test, 500)
desc = cap.image_descriptors(DATASET, train.images[:8], train.labels[:8])
import random

rng = random.Random(0)
texts = [cap.caption(DATASET, int(train.labels[i]), {k: int(v[i]) for k, v in desc.items()}, rng=rng)
         for i in range(8)]
show(cvaelib.show_grid(train.float_images()[:8], titles=texts, ncols=4))

# %% [markdown]
# ## 2. Train TinyCLIP
# Contrastive training as in CLIP, with one twist the generated captions allow: every caption of the same class
# counts as a match (see `cvaelib/clip/tiny.py`).  Word pieces it never saw read as one shared `<unk>` embedding,
# and training sprinkles `<unk>` into captions, so unseen words ("a *blurry* photo of ...") do not derail it.
# The trained model is cached: re-running this cell loads it.

# %%
if USE_REAL_CLIP:
    from cvaelib.clip import load_clip

    encoder = load_clip("ViT-B/32", device=env.device)
elif env.smoke:
    encoder = train_tiny_clip(DATASET, data=train, seconds=30, max_steps=30, progress=False)
else:
    encoder = get_tiny_clip(DATASET, env.data_root, seconds=TINY_SECONDS)
print(encoder, getattr(encoder, "meta", ""))

# %% [markdown]
# **Zero-shot classification.**  Without ever training a classifier: embed "a photo of a {class}" for every class
# (with *held-out* templates TinyCLIP never saw, averaged over synonyms) and give each test image the class whose
# text is most similar.

# %%
if DATASET in cap.SYNONYMS:
    acc, per_class = zero_shot_accuracy(encoder, test, DATASET)
    print(f"zero-shot accuracy on {len(test)} test images: {acc:.1%}")
    print("  ".join(f"{n}: {a:.0%}" for n, a in zip(test.class_names, per_class)))

# %% [markdown]
# ## 3. The shared space, as a picture
# Rows: one prompt per class.  Columns: one test image per class.  Each cell is the cosine similarity of a text
# embedding and an image embedding; a bright diagonal means every prompt found its picture.

# %%
import matplotlib.pyplot as plt

first = [int((test.labels == k).nonzero()[0]) for k in range(test.num_classes)]
prompts = [v[0] for v in cap.example_prompts(DATASET).values()]
sim = encoder.encode_text(prompts) @ encoder.encode_images(test.float_images()[first]).T
fig, ax = plt.subplots(figsize=(7, 6))
im = ax.imshow(sim, cmap="viridis")
ax.set_yticks(range(len(prompts)), prompts)
ax.set_xticks(range(len(first)), [test.class_names[k] for k in range(len(first))], rotation=60)
fig.colorbar(im, label="cosine similarity")
ax.set_title("text (rows) vs image (columns)")
show(fig)

# %% [markdown]
# ### Exercise 1 · The cosine-similarity matrix
# The picture above is one matrix product. Write it for embeddings that are *not* normalised yet: rows of
# `text_emb` `[T, D]` are texts, rows of `image_emb` `[I, D]` images; return the `[T, I]` matrix of cosine
# similarities (normalise every row to unit length, then multiply).

# %%
import torch.nn.functional as F


def similarity_matrix(text_emb, image_emb):
    ### BEGIN SOLUTION
    return F.normalize(text_emb, dim=-1) @ F.normalize(image_emb, dim=-1).T
    ### END SOLUTION


# %%
from cvaelib.teach import check_similarity_matrix

check_similarity_matrix(similarity_matrix)

# %% [markdown]
# Look at the colour bar: even the best text-image match is far below 1, while two images of the same digit have a
# similarity close to 1.  Texts and images occupy *different regions* of the sphere - the **modality gap**
# (Liang et al. 2022).  It matters for what comes next.

# %%
img = encoder.encode_images(test.float_images()[:500])
txt = encoder.encode_text(cap.class_prompts(DATASET, 0))
print(f"mean cos(image, image) of the same class: "
      f"{float((img[test.labels[:500] == 0] @ img[test.labels[:500] == 0].T).mean()):.2f}; "
      f"mean cos(text, image) of the same class: {float((txt @ img[test.labels[:500] == 0].T).mean()):.2f}")

# %% [markdown]
# ## 4. The CLIP-conditioned CVAE
# The condition is now a CLIP embedding.  It enters the encoder (at a point you choose: `inject="features"`,
# `"hidden"` or `"input"`) and is concatenated to z in the decoder:

# %%
show_source(cvaelib.models.clip_cvae.ClipConditionalVAE.encode)

# %% [markdown]
# Training needs **no captions at all**: the condition of each training image is its own *image* embedding
# (LAFITE's "language-free" training), slightly perturbed,
# $c' = \mathrm{normalise}(c + \xi\,\lVert c\rVert\,\epsilon/\lVert\epsilon\rVert)$, so the decoder also accepts
# embeddings near the ones it saw.  `train_clip_cvae` embeds the images, trains the CVAE with `fit`, and stores in
# the checkpoint a bank of 10,000 training image embeddings for the bridge below.

# %% [markdown]
# ### Exercise 2 · LAFITE's noise
# Write the perturbation above for a batch of conditions `c` `[N, D]`: draw ε ~ N(0, I) per row, scale it to
# length ξ‖c‖ (normalise ε per row first), add it to c and bring the result back to unit length. The check
# compares the angle your noise makes with the kit's `perturb_condition` used in training.

# %%
def perturb(c, xi):
    ### BEGIN SOLUTION
    eps = F.normalize(torch.randn_like(c), dim=-1)
    return F.normalize(c + xi * c.norm(dim=-1, keepdim=True) * eps, dim=-1)
    ### END SOLUTION


# %%
from cvaelib.teach import check_perturb_condition

check_perturb_condition(perturb)

# %%
run_dir = env.work_dir / f"05_clip_cvae_{DATASET}{'_smoke' if env.smoke else ''}"
if (run_dir / "checkpoint.pt").exists() and not env.smoke:
    model, encoder = load_clip_cvae(run_dir, env.device)  # trained before: skip
else:
    if not USE_REAL_CLIP:
        from cvaelib.clip.tiny import save_tiny_clip

        save_tiny_clip(encoder, run_dir / "tinyclip.pt")  # the run folder keeps its CLIP
    run = train_clip_cvae(DATASET, run_dir, env.data_root, clip="ViT-B/32" if USE_REAL_CLIP else "tiny",
                          epochs=CVAE_EPOCHS, max_seconds=None, limit=3000 if env.smoke else None,
                          device=env.device)
    model, encoder = run["model"], run["encoder"]
    show(cvaelib.plot_history(run["history"]))

# %% [markdown]
# ## 5. Text → image, and the bridge across the gap
# Feeding the *text* embedding straight in (`bridge="direct"`) asks the decoder about a region it never saw.
# The **retrieval bridge** looks up the training image embeddings the text describes best (ranked as in zero-shot
# classification: the prompt must beat one reference text per class) and conditions each sample on one of them - a nearest-neighbour stand-in for DALL·E 2's learned text-to-image prior.  It also
# starts z from that neighbour's latent code plus noise (`z_noise=0.5`) rather than from N(0, I): z and the
# condition then agree, as they did in training.  The `shift` bridge moves the text by the average gap vector.

# %%
prompt = cap.example_prompts(DATASET)[7][0]
rows = [generate_from_text(model, encoder, prompt, 8, seed=0, bridge=b) for b in ("direct", "shift", "retrieval")]
show(cvaelib.show_grid(torch.cat(rows), ncols=8, title=f"'{prompt}': direct / shift / retrieval (rows)"))

# %% [markdown]
# Measure it: an independent classifier judges 32 samples per prompt (prompts a student would type).

# %%
judge = env.judge(DATASET, train)  # SMOKE: a quick judge trained on the small subset
for bridge in ("direct", "shift", "retrieval"):
    res = prompt_accuracy(model, encoder, cap.example_prompts(DATASET), judge, n=8 if env.smoke else 32,
                          bridge=bridge)
    print(f"{bridge:9s} {res['overall']:.1%}  " + " ".join(f"{k}:{v:.0%}" for k, v in res["per_class"].items()))

# %% [markdown]
# A second number that needs no classifier: the **CLIP score**, the cosine between a prompt's text embedding and
# the image embedding of what was generated for it (Hessel et al. 2021). Real images of the class set the level
# to aim for.

# %%
from cvaelib.metrics import clip_score

prompts_by_class = cap.example_prompts(DATASET)
first_prompts = [prompts_by_class[k][0] for k in sorted(prompts_by_class)]
t_emb = encoder.encode_text(first_prompts)
generated = torch.cat([generate_from_text(model, encoder, p, 4, seed=0) for p in first_prompts])
real = torch.cat([test.float_images()[test.labels == k][:4] for k in sorted(prompts_by_class)])
print(f"CLIP score, generated {float(clip_score(encoder.encode_images(generated), t_emb.repeat_interleave(4, 0))):.3f}"
      f" vs real images of the named class {float(clip_score(encoder.encode_images(real), t_emb.repeat_interleave(4, 0))):.3f}"
      f" ({len(generated)} images each)")

# %% [markdown]
# ## 6. Try your own prompt
# The widget only wires a text box to the library function `generate_from_text`.

# %%
import ipywidgets as widgets
from IPython.display import display

box = widgets.Text(value="a thick seven", description="prompt")
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
# ## 7. Image → image, attribute manipulation, interpolation, reconstruction
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
target = cap.example_prompts(DATASET)[3][0]
steps = [manipulate(model, encoder, x, target, image_embed_factor=f) for f in (1.0, 0.75, 0.5, 0.25, 0.0)]
show(cvaelib.show_grid(torch.cat(steps), ncols=6, title=f"toward '{target}', image factor 1 -> 0 (rows)"))

# %% [markdown]
# **Interpolation** between two prompts (or two images): conditions follow the great circle between the two
# embeddings.

# %%
a, b = cap.example_prompts(DATASET)[1][0], cap.example_prompts(DATASET)[8][0]
show(cvaelib.show_grid(torch.cat([interpolate(model, encoder, a, b, steps=8, seed=0),
                                  interpolate(model, encoder, x[0], x[1], steps=8)]), ncols=8,
                       title=f"'{a}' -> '{b}'; image -> image"))

# %% [markdown]
# **Reconstruction**: encode and decode each image with its own embedding.

# %%
show(cvaelib.show_grid(torch.cat([x, reconstruct(model, encoder, x)]), ncols=6, title="input / reconstruction"))

# %% [markdown]
# ## 8. Your turn: Fashion-MNIST
# Set `DATASET = "fashion-mnist"` in the setup cell and run everything again.  Try synonyms ("a pair of
# trainers", "a parka", "flip-flops", "jeans") and descriptors ("a dark coat").  On the command line:
#
# ```
# python -m cvaelib train --model clip-cvae --dataset fashion-mnist --clip tiny --max-seconds 60 --out runs/fclip
# python -m cvaelib generate --checkpoint runs/fclip --prompt "a pair of sneakers" --n 16 --out sneakers.png
# ```
#
# **Open questions**
# 1. Which fashion prompts fail most often with `bridge="direct"`?  Plot their text embedding's similarity to the
#    bank (`cvaelib.clip.bridge.retrieve`) - which class does it really retrieve?
# 2. Change `k` in `generate_from_text(..., k=...)` from 8 to 512.  What happens to diversity and to accuracy?
#
# **Takeaway:** CLIP gives one space for words and pictures; a CVAE trained on image embeddings alone can draw
# from text once a bridge moves the text embedding to where image embeddings live.
#
# ## What's next
# [06 · Faces from words](06_celeba_clip_cvae.ipynb) scales the idea to 64×64 colour faces with a residual VAE
# and real CLIP.
