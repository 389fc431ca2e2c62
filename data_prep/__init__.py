"""Offline dataset preparation: run once, then notebooks open the result with ``cvaelib.data.load_prepared``.

* ``python -m data_prep.celeba --src CELEBA_DIR --out prepared/celeba`` -- CelebA faces (zoom-face and wide crops,
  40 attributes, official train/val/test partition).
* ``python -m data_prep.coco --annotations captions_val2017.json --download --out prepared/coco`` -- a themed COCO
  subset (word-boundary caption filter), images at 64 and 128, all captions.

Both write uint8 ``.npy`` shards and a ``manifest.json`` (see :mod:`cvaelib.data.shards`), resume where they
stopped, and report and skip corrupt images instead of crashing.
"""
