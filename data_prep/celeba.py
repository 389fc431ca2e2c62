"""Prepare CelebA for the kit: 64x64 faces (zoom-face and wide crops), 40 attributes, official partition.

Run ``python -m data_prep.celeba --help``.  Reads either layout people actually have:

* official (the CelebA site's Google Drive, or torchvision's ``celeba/`` folder)::

      SRC/img_align_celeba/000001.jpg ...   (or SRC/img_align_celeba.zip, not unpacked)
      SRC/list_attr_celeba.txt              count line, names line, then "000001.jpg -1  1 ..." rows
      SRC/list_eval_partition.txt           "000001.jpg 0" rows (0 train, 1 val, 2 test)

* Kaggle (``jessicali9530/celeba-dataset``)::

      SRC/img_align_celeba/img_align_celeba/000001.jpg ...
      SRC/list_attr_celeba.csv              image_id,5_o_Clock_Shadow,...,Young
      SRC/list_eval_partition.csv           image_id,partition

Crops of the aligned 178x218 images (PIL boxes are left, top, right, bottom):

* ``zoom`` -- rows 45:173, cols 25:153: a 128x128 square holding only the face, the crop the CLIP-conditioned
  CelebA VAE the kit learns from reported as giving better generations;
* ``wide`` -- rows 20:198, all 178 columns: the centre square, hair, neck and background included.

Each is resized (antialiased bicubic) to every ``--sizes`` value.  Output: see :mod:`cvaelib.data.shards`; open it
with ``cvaelib.data.load_prepared(OUT, split="train", variant="zoom")``.
"""

from __future__ import annotations

import csv
import os
import shlex
import sys
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


if __package__ in (None, ""):  # run as a file (python data_prep/celeba.py): the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cvaelib.data.shards import ShardWriter, images_key
from cvaelib.errors import DataError

from data_prep.common import (RESAMPLE, BadImage, build_split, decode, finish, Formatter, Log, make_pool, Parser, positive_int,
                     require_images, run, to_chw)

from cvaelib.conditioning.attributes import CELEBA_ATTRIBUTES as ATTRIBUTE_NAMES  # the 40 names, defined once
ALIGNED_SIZE = (178, 218)  # width, height of every img_align_celeba picture
#: variant -> PIL crop box (left, top, right, bottom) on the aligned image
CROPS = {"zoom": (25, 45, 153, 173), "wide": (0, 20, 178, 198)}
SPLITS = {0: "train", 1: "val", 2: "test"}

HOW_TO_GET = """\
How to get CelebA (about 1.4 GB; torchvision's download often fails on Google Drive's quota):

 A) Official site: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html -> "Align&Cropped Images" (Google Drive).
    Download Img/img_align_celeba.zip, Anno/list_attr_celeba.txt and Eval/list_eval_partition.txt into one
    folder SRC.  Unzip the images there (or leave the zip: this script reads img_align_celeba.zip directly):
        SRC/img_align_celeba/000001.jpg ... 202599.jpg
        SRC/list_attr_celeba.txt
        SRC/list_eval_partition.txt
 B) Kaggle (needs a free account and ~/.kaggle/kaggle.json from "Settings -> Create New Token"):
        pip install kaggle
        kaggle datasets download -d jessicali9530/celeba-dataset -p SRC
        unzip -q SRC/celeba-dataset.zip -d SRC
    which gives SRC/img_align_celeba/img_align_celeba/*.jpg and SRC/list_attr_celeba.csv, list_eval_partition.csv.
 On Colab: keep the zip on Google Drive, copy it to the VM's local disk (cp /content/drive/MyDrive/... /content/)
 and unzip there -- unzipping 200k files onto Drive itself is very slow.  Then:
        python -m data_prep.celeba --src SRC --out prepared/celeba
"""


class CelebaMissing(DataError):
    """CelebA files not found; the CLI prints :data:`HOW_TO_GET` with it."""


# ---------------------------------------------------------------------------------------------- image sources
class FolderImages:
    """Images in a folder (``img_align_celeba/``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def __str__(self) -> str:
        return str(self.folder)


class ZipImages:
    """Images inside ``img_align_celeba.zip``, read without unpacking (one zip handle per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        try:
            with zipfile.ZipFile(path) as zf:
                self.members = {Path(m).name: m for m in zf.namelist() if m.lower().endswith((".jpg", ".png"))}
        except (OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path} is not a readable zip ({exc}); re-download it or unzip it by hand") from None

    def read(self, name: str) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise FileNotFoundError(name)
        zf = getattr(self._local, "zf", None)
        if zf is None:
            zf = self._local.zf = zipfile.ZipFile(self.path)
        try:
            return zf.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # e.g. CRC error of a damaged member
            raise BadImage(f"zip member damaged: {exc}") from None

    def __str__(self) -> str:
        return str(self.path)


@dataclass
class CelebaSource:
    """Where the three parts of a CelebA copy are."""

    images: FolderImages | ZipImages
    attributes: Path
    partition: Path
    layout: str  # "official", "official-zip" or "kaggle"


def _has_images(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    with os.scandir(folder) as it:
        return any(e.name.lower().endswith(".jpg") for e in it)


def _first(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _subdirs(folder: Path) -> list[Path]:
    # never list an image folder: 200k entries are slow, above all on a mounted Google Drive
    if folder.name.lower().startswith("img_align_celeba") or not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        return sorted(Path(e.path) for e in it if e.is_dir())


def _candidate_roots(src: Path):
    """``src``, its parents when it is the image folder itself, then sub-folders two levels deep (lazily)."""
    yield src
    if src.name.lower().startswith("img_align_celeba"):
        yield src.parent
        yield src.parent.parent
    for sub in _subdirs(src):
        yield sub
        yield from _subdirs(sub)


def find_celeba(src: str | os.PathLike) -> CelebaSource:
    """Locate images, attribute file and partition file under ``src`` (either layout, up to two folders deep).

    Raises:
        CelebaMissing: something is missing (the message says what was found and what was not).
    """
    src = Path(src).expanduser()
    if not src.exists():
        raise CelebaMissing(f"--src {src} does not exist; see: python -m data_prep.celeba --how-to-get")
    found: dict[str, Path] = {}
    for root in _candidate_roots(src):
        attr = _first([root / "list_attr_celeba.txt", root / "list_attr_celeba.csv", root / "Anno" /
                       "list_attr_celeba.txt"])
        part = _first([root / "list_eval_partition.txt", root / "list_eval_partition.csv",
                       root / "Eval" / "list_eval_partition.txt"])
        nested, flat, img = root / "img_align_celeba" / "img_align_celeba", root / "img_align_celeba", None
        layout = "official"
        if _has_images(nested):
            img, layout = FolderImages(nested), "kaggle"
        elif _has_images(flat):
            img = FolderImages(flat)
        elif _has_images(root / "Img" / "img_align_celeba"):
            img = FolderImages(root / "Img" / "img_align_celeba")
        elif src.name.lower() == "img_align_celeba" and root == src.parent and _has_images(src):
            img = FolderImages(src)
        else:
            zpath = _first([root / "img_align_celeba.zip", root / "Img" / "img_align_celeba.zip"])
            if zpath is not None:
                img, layout = ZipImages(zpath), "official-zip"
        for key, value in (("images", img), ("attributes", attr), ("partition", part)):
            if value is not None:
                found.setdefault(key, value)
        if img is not None and attr is not None and part is not None:
            if attr.suffix == ".csv" and layout == "official":
                layout = "kaggle"
            return CelebaSource(img, attr, part, layout)
    missing = [k for k in ("images", "attributes", "partition") if k not in found]
    what = {"images": "img_align_celeba/*.jpg (or img_align_celeba.zip)",
            "attributes": "list_attr_celeba.txt/.csv", "partition": "list_eval_partition.txt/.csv"}
    have = "; ".join(f"{k} at {v}" for k, v in found.items()) or "nothing"
    raise CelebaMissing(f"CelebA not complete under {src}: missing {', '.join(what[k] for k in missing)} "
                        f"(found {have}); download steps: python -m data_prep.celeba --how-to-get")


# ---------------------------------------------------------------------------------------------- annotations
def _rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} ({exc}); re-download it") from None
    if path.suffix.lower() == ".csv":
        return [[c.strip() for c in row] for row in csv.reader(text.splitlines()) if row]
    return [line.split() for line in text.splitlines() if line.strip()]


def parse_attributes(path: str | os.PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read ``list_attr_celeba.txt`` (official) or ``.csv`` (Kaggle).

    Returns:
        ``(names, table)``: the 40 attribute names in the kit's canonical order and ``file name -> uint8 [40]``
        multi-hot row (``1`` where the file says ``1``, ``0`` for ``-1``/``0``).
    """
    path = Path(path)
    rows = _rows(path)
    if path.suffix.lower() == ".csv":
        if not rows or rows[0][0].lower() not in ("image_id", "filename", "file"):
            raise DataError(f"{path}: expected a header 'image_id,5_o_Clock_Shadow,...'; is this the Kaggle file?")
        names, body, first_line = rows[0][1:], rows[1:], 2
    else:
        if len(rows) < 2:
            raise DataError(f"{path} is empty or truncated; re-download list_attr_celeba.txt")
        start = 1 if len(rows[0]) == 1 and rows[0][0].isdigit() else 0  # the count line
        names, body, first_line = rows[start], rows[start + 1:], start + 2
        if start == 1 and int(rows[0][0]) != len(body):
            raise DataError(f"{path} announces {rows[0][0]} images but lists {len(body)}; the file is truncated, "
                            f"re-download it")
    if sorted(names) != sorted(ATTRIBUTE_NAMES):
        odd = sorted(set(names) ^ set(ATTRIBUTE_NAMES))[:4]
        raise DataError(f"{path}: attribute names differ from CelebA's 40 (e.g. {odd}); is this list_attr_celeba?")
    order = [names.index(a) for a in ATTRIBUTE_NAMES]
    table: dict[str, np.ndarray] = {}
    for lineno, row in enumerate(body, start=first_line):
        if len(row) != 41:
            raise DataError(f"{path} line {lineno}: {len(row)} fields, expected a file name and 40 values")
        try:
            values = np.array([int(v) for v in row[1:]], dtype=np.int64)[order]
        except ValueError:
            raise DataError(f"{path} line {lineno}: values must be -1, 0 or 1") from None
        if not np.isin(values, (-1, 0, 1)).all():
            raise DataError(f"{path} line {lineno}: values must be -1, 0 or 1")
        table[row[0]] = (values > 0).astype(np.uint8)
    return list(ATTRIBUTE_NAMES), table


def parse_partition(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``list_eval_partition.txt``/``.csv`` -> ``{"train": [names...], "val": [...], "test": [...]}``."""
    path = Path(path)
    rows = _rows(path)
    if rows and not rows[0][-1].isdigit():  # Kaggle header "image_id,partition"
        rows = rows[1:]
    out: dict[str, list[str]] = {name: [] for name in SPLITS.values()}
    for lineno, row in enumerate(rows, start=1):
        if len(row) != 2 or row[1] not in ("0", "1", "2"):
            raise DataError(f"{path} line {lineno}: expected '<file name> <0|1|2>', got {' '.join(row)!r}")
        out[SPLITS[int(row[1])]].append(row[0])
    if not any(out.values()):
        raise DataError(f"{path} lists no images; re-download list_eval_partition")
    return out


# ---------------------------------------------------------------------------------------------- images
def crop_face(img, variant: str, size: int) -> np.ndarray:
    """Crop an aligned 178x218 CelebA image (``zoom`` or ``wide``, see :data:`CROPS`) and resize to ``size``.

    Returns uint8 ``[3, size, size]``.
    """
    if variant not in CROPS:
        raise DataError(f"unknown variant {variant!r}; choose one of: {', '.join(CROPS)}")
    if img.size != ALIGNED_SIZE:
        raise BadImage(f"size {img.size[0]}x{img.size[1]}, aligned CelebA images are 178x218 "
                       f"(img_celeba 'in the wild' images are not supported)")
    box = CROPS[variant]
    side = box[2] - box[0]
    out = img.crop(box) if side == size else img.resize((size, size), RESAMPLE, box=box)
    return to_chw(out)


def _process(source, name: str, variants: Sequence[str], sizes: Sequence[int]) -> dict[str, np.ndarray]:
    try:
        data = source.read(name)
    except FileNotFoundError:
        raise BadImage("file missing from the image folder", retry=True) from None
    except OSError as exc:
        raise BadImage(f"cannot read: {exc}") from None
    img = decode(data)
    return {images_key(v, s): crop_face(img, v, s) for v in variants for s in sizes}


def prepare_celeba(src: str | os.PathLike, out: str | os.PathLike, sizes: Sequence[int] = (64,),
                   variants: Sequence[str] = ("zoom", "wide"), splits: Sequence[str] = ("train", "val", "test"),
                   limit: int | None = None, shard_size: int = 10_000, workers: int | None = None,
                   verify: bool = True, log=None, prep_command: str = "") -> dict:
    """Turn a CelebA copy into shards (see module doc). Re-running skips finished shards.

    Args:
        src: folder holding CelebA in the official or Kaggle layout.
        out: prepared folder.
        sizes: output image sides.
        variants: ``zoom`` and/or ``wide``.
        splits: which of the official splits to prepare.
        limit: keep only the first ``limit`` images of each split (quick experiments).
        shard_size: images per shard (10,000 at 64 px = 123 MB per variant).
        workers: decoding threads (PIL releases the GIL while decoding); default: CPU count.
        verify: re-hash finished shards on resume.

    Returns:
        The manifest (dict).
    """
    log = Log.of(log)
    sizes = sorted({int(s) for s in sizes})
    bad = [v for v in variants if v not in CROPS] + [s for s in sizes if s < 1]
    if bad:
        raise DataError(f"unknown variant/size {bad[0]!r}; variants: {', '.join(CROPS)}; sizes: positive ints")
    unknown = [s for s in splits if s not in SPLITS.values()]
    if unknown:
        raise DataError(f"unknown split {unknown[0]!r}; choose from train, val, test")
    source = find_celeba(src)
    names, table = parse_attributes(source.attributes)
    partition = parse_partition(source.partition)
    log(f"CelebA ({source.layout} layout): images {source.images}, "
        + ", ".join(f"{k} {len(v)}" for k, v in partition.items()))
    config = {"sizes": sizes, "variants": list(variants), "default_variant": "zoom" if "zoom" in variants
              else variants[0], "shard_size": shard_size, "crops": {v: CROPS[v] for v in variants},
              "resample": "bicubic (antialiased)"}
    info = {"attribute_names": names, "source": str(Path(src).resolve()), "layout": source.layout, "limit": limit,
            "crop_note": "PIL boxes (left, top, right, bottom) on the aligned 178x218 image"}
    writer = ShardWriter(out, "celeba", config, info, prep_command=prep_command, verify=verify, log=log)
    shapes = {images_key(v, s): ((3, s, s), np.uint8) for v in variants for s in sizes}
    shapes["attributes"] = ((len(names),), np.uint8)

    def work(name: str):
        if name not in table:
            raise BadImage("not listed in the attribute file")
        arrays = _process(source.images, name, variants, sizes)
        arrays["attributes"] = table[name]
        return arrays, {"file_name": name}

    shown = [0]
    with make_pool(workers or os.cpu_count() or 2) as pool:
        for split in splits:
            files = partition[split][:limit] if limit else partition[split]
            entry = build_split(writer, pool, split, files, shard_size, work, shapes, log,
                                lambda name: {"name": name}, shown)
            if files:
                require_images(entry, split, f"; check --src {src}")
    return finish(writer, log)


def build_parser() -> Parser:
    p = Parser(prog="data_prep.celeba", formatter_class=Formatter,
               description="Turn CelebA (official or Kaggle layout) into 64x64 uint8 shards with the 40 attributes "
                           "and the official train/val/test partition.\n\n" + HOW_TO_GET,
               epilog="examples:\n"
                      "  python -m data_prep.celeba --src ~/celeba --out prepared/celeba\n"
                      "  python -m data_prep.celeba --src ~/celeba --out prepared/celeba_small --limit 2000\n"
                      "  python -m data_prep.celeba --src ~/celeba --out prepared/celeba --sizes 64 128 "
                      "--variants zoom\n"
                      "then in Python: cvaelib.data.load_prepared('prepared/celeba', split='train', size=64)")
    p.add_argument("--src", help="folder holding CelebA (official or Kaggle layout; may be one level above)")
    p.add_argument("--out", help="output folder for shards and manifest.json")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[64], help="output image sides in pixels")
    p.add_argument("--variants", nargs="+", choices=sorted(CROPS), default=["zoom", "wide"],
                   help="zoom: face only (rows 45:173, cols 25:153); wide: centre square with hair and neck")
    p.add_argument("--splits", nargs="+", choices=list(SPLITS.values()), default=list(SPLITS.values()))
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images of each split")
    p.add_argument("--shard-size", type=positive_int, default=10_000, help="images per shard")
    p.add_argument("--workers", type=positive_int, default=None, help="decoding threads (default: CPU count)")
    p.add_argument("--no-verify", action="store_true", help="on resume, trust finished shards without re-hashing")
    p.add_argument("--quiet", action="store_true", help="print only skipped images and the summary")
    p.add_argument("--how-to-get", action="store_true", help="print how to download CelebA and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.how_to_get:
        print(HOW_TO_GET)
        return 0
    if not args.src or not args.out:
        raise DataError("both --src (your CelebA folder) and --out (where to write) are needed; "
                        "see: python -m data_prep.celeba --help")
    command = "python -m data_prep.celeba " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                else sys.argv[1:]))
    prepare_celeba(args.src, args.out, args.sizes, args.variants, args.splits, args.limit, args.shard_size,
                   args.workers, verify=not args.no_verify, log=Log(args.quiet), prep_command=command)
    return 0


def _explain(exc) -> None:
    if isinstance(exc, CelebaMissing):
        print(HOW_TO_GET, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(run(main, on_error=_explain))
