"""Dataset registry: a name becomes an :class:`ImageData` (all images as one uint8 tensor).

MNIST and Fashion-MNIST use torchvision's folder layout (``ROOT/MNIST/raw/*.gz``, ``ROOT/FashionMNIST/raw/*.gz``)
and torchvision's own download code, so a Colab download and the offline copy in ``../shared/data`` look the same.
The ``.gz`` files are checked against torchvision's md5 sums (written out in ``_MD5``) and decoded in memory, which
also works on a read-only data folder.  ``digits`` is scikit-learn's bundled set of 1,797 real 8x8 handwritten
digits: it needs no download, so the quickstart and first lessons run anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError

MNIST_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

#: dataset name -> (torchvision class name / folder, class names)
_IDX_SETS = {"mnist": ("MNIST", MNIST_CLASSES), "fashion-mnist": ("FashionMNIST", FASHION_CLASSES)}
DATASETS = ("digits", "mnist", "fashion-mnist")


@dataclass
class ImageData:
    """A whole split in memory.

    Attributes:
        images: uint8 tensor ``[N, C, H, W]`` (0 = black, 255 = white).
        labels: what the dataset says about each item: class ids int64 ``[N]`` (MNIST), attribute vectors float
            ``[N, 40]`` (CelebA), or an index into ``meta["captions"]`` (COCO).
        class_names: human-readable name of each label id (CelebA: of each attribute).
        name: the registry name of the dataset (``"mnist"``, ...).
        meta: anything else (file names, captions, the prepared folder, ...).
        conditions: what a model trained on this data is conditioned on, one row per item: the ``labels``
            themselves unless something else was put there (CLIP image embeddings, by
            :func:`cvaelib.conditioning.with_clip_condition`).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str = ""
    meta: dict = field(default_factory=dict)
    conditions: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.conditions is None:
            self.conditions = self.labels

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_own_conditions(self) -> bool:
        """True when ``conditions`` are not simply the ``labels`` (e.g. CLIP embeddings)."""
        return self.conditions is not self.labels

    def fingerprint(self, samples: int = 256) -> dict:
        """What identifies this data cheaply: name, size, image shape and a hash of ``samples`` evenly spaced items
        (images and labels).  Checkpoints store it, so a run is never resumed on other data (e.g. a SMOKE subset)."""
        n = len(self)
        idx = torch.unique(torch.linspace(0, max(n - 1, 0), min(n, samples)).round().long()) if n else []
        digest = hashlib.blake2b(digest_size=8)
        for t in (self.images, self.labels):
            part = t[idx].detach().cpu().contiguous() if n else t
            digest.update(str(part.dtype).encode() + part.numpy().tobytes())
        return {"name": self.name, "size": n, "shape": list(self.shape), "hash": digest.hexdigest()}

    def float_images(self) -> torch.Tensor:
        """All images as float32 in [0, 1]."""
        return self.images.float().div_(255.0)

    def with_conditions(self, conditions: torch.Tensor, **meta) -> "ImageData":
        """The same items conditioned on ``conditions`` (one row per item); ``meta`` entries are added."""
        if len(conditions) != len(self):
            raise DataError(f"{len(conditions)} conditions for {len(self)} images; pass one per image")
        return ImageData(self.images, self.labels, self.class_names, self.name, {**self.meta, **meta}, conditions)

    def take(self, index: torch.Tensor | slice | list[int]) -> "ImageData":
        """A new ImageData holding the selected items (a view where torch allows it)."""
        own = self.conditions[index] if self.has_own_conditions else None
        return ImageData(self.images[index], self.labels[index], self.class_names, self.name, dict(self.meta), own)

    def to(self, device: torch.device | str) -> "ImageData":
        """Move images, labels and conditions to ``device`` (keeps uint8: 4x less memory than float)."""
        own = self.conditions.to(device) if self.has_own_conditions else None
        return ImageData(self.images.to(device), self.labels.to(device), self.class_names, self.name,
                         dict(self.meta), own)


def default_data_root() -> Path:
    """``$CVAELIB_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("CVAELIB_DATA", "data"))


def check_dataset_name(name: str) -> str:
    """Normalise a dataset name (``FashionMNIST`` -> ``fashion-mnist``) or raise a one-line error."""
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "fashion": "fashion-mnist", "sklearn-digits": "digits"}.get(key, key)
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


def class_names(name: str) -> list[str]:
    """Class names of a registered dataset, without loading it."""
    key = check_dataset_name(name)
    return list(MNIST_CLASSES) if key == "digits" else list(_IDX_SETS[key][1])


def load_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train",
                 download: bool = False) -> ImageData:
    """Load a whole split of a registered dataset into memory.

    Args:
        name: ``"digits"``, ``"mnist"`` or ``"fashion-mnist"``.
        root: folder that contains ``MNIST/`` and ``FashionMNIST/`` (default: :func:`default_data_root`).
        split: ``"train"`` or ``"test"``.
        download: let torchvision fetch missing files (needs internet; on by default on Colab).

    Raises:
        DataError: unknown name/split, missing or corrupt files (the message names the layout and the fix).
    """
    key = check_dataset_name(name)
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    if key == "digits":
        return _load_digits(split)
    return _load_idx(key, Path(root) if root is not None else default_data_root(), split, download)


def _load_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    # A fixed stratified-by-order split: every 5th digit is test (359 test, 1,438 train).
    test = np.arange(len(labels)) % 5 == 0
    keep = test if split == "test" else ~test
    return ImageData(torch.from_numpy(images[keep].copy()), torch.from_numpy(labels[keep].copy()),
                     list(MNIST_CLASSES), "digits")


def _idx_files(folder: str, split: str) -> tuple[str, str]:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: the md5 sums torchvision checks (``torchvision.datasets.MNIST.resources``, ``FashionMNIST.resources``), written
#: out here because importing torchvision costs ~1.6 s per process and these files never change
_MD5 = {
    "MNIST": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    "FashionMNIST": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
}


def fetch(name: str, root: str | os.PathLike | None = None) -> Path:
    """Download a dataset with torchvision's own code into ``root`` (internet needed). Returns the raw folder."""
    key = check_dataset_name(name)
    if key == "digits":
        return Path("(bundled with scikit-learn)")
    root = Path(root) if root is not None else default_data_root()
    import torchvision.datasets as tvd

    folder = _IDX_SETS[key][0]
    try:
        for train in (True, False):
            getattr(tvd, folder)(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"could not download {folder} into {root}/{folder}/raw ({type(exc).__name__}: {exc}); "
                        f"check the internet connection or copy the four .gz files there by hand") from None
    return root / folder / "raw"


def _load_idx(key: str, root: Path, split: str, download: bool) -> ImageData:
    folder, names = _IDX_SETS[key]
    raw = root / folder / "raw"
    files = _idx_files(folder, split)
    missing = [f for f in files if not (raw / f).is_file() and not (raw / f[:-3]).is_file()]
    if missing and download:
        fetch(key, root)
        missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        if not root.is_dir():
            where = f"data root {root} does not exist"
        elif (root / folder).is_dir() and any((root / folder).rglob("*.gz")):
            where = f"{folder} files are not where expected (one folder too deep or renamed?)"
        else:
            where = f"{missing[0]} not found in {raw}"
        raise DataError(f"{where}; expected layout ROOT/{folder}/raw/{files[0]} (+ labels); fetch it with: "
                        f"python -m cvaelib fetch {key} --data-root {root} (or set $CVAELIB_DATA)")
    expected = _MD5[folder]
    arrays = []
    for fname in files:
        path = raw / fname
        if not path.is_file():  # only the uncompressed copy exists (torchvision extracted and removed the .gz)
            arrays.append(_parse_idx(path.with_suffix("").read_bytes(), path.with_suffix("")))
            continue
        digest = _md5(path)
        if digest != expected[fname]:
            raise DataError(f"{path} is corrupt (md5 {digest}, expected {expected[fname]}); delete it and "
                            f"re-fetch with: python -m cvaelib fetch {key} --data-root {root}")
        try:
            arrays.append(_parse_idx(gzip.decompress(path.read_bytes()), path))
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path} cannot be decompressed ({exc}); delete it and re-fetch with: "
                            f"python -m cvaelib fetch {key} --data-root {root}") from None
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(f"{raw}: {len(images)} images but {len(labels)} labels; re-fetch the files")
    return ImageData(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.astype(np.int64)),
                     list(names), key, {"root": str(root)})


def _parse_idx(buf: bytes, path: Path) -> np.ndarray:
    """Decode the IDX format (big-endian magic, dims, then uint8 data) used by (Fashion-)MNIST."""
    if len(buf) < 8 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise DataError(f"{path} is not an IDX uint8 file; re-fetch it")
    ndim = buf[3]
    dims = np.frombuffer(buf, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    if len(buf) - offset != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({len(buf) - offset} of {int(np.prod(dims))} bytes); re-fetch it")
    return np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(tuple(dims))


def train_val_split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
    """Deterministic random split: the same ``seed`` always gives the same validation images."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(len(data) * val_fraction)))
    return data.take(perm[n_val:]), data.take(perm[:n_val])


def subset(data: ImageData, n: int, seed: int = 0) -> ImageData:
    """A random (seeded) subset of ``n`` items, or all of them when ``n >= len(data)``."""
    if n >= len(data):
        return data
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data.take(idx.sort().values)
