"""Prepare a themed COCO 2017 subset: caption keyword filter, images at 64 and 128, every caption kept.

Run ``python -m data_prep.coco --help``.  Steps:

1. Read the official captions files (``captions_train2017.json`` -> split ``train``, ``captions_val2017.json`` ->
   split ``val``; validation always comes from val2017, it is never carved out of train).
2. Keep an image when at least ``--min-matches`` of its captions contain a theme keyword as a *whole word*
   (``\\bcows?\\b``: "cow", "Cow." and "cows" match, "cowboy" and "scowl" do not, and "tree" does not fire on
   "street" -- the substring filter of the project the kit learns from made exactly these mistakes), and none
   contains an ``--exclude`` word.
3. Take each image from ``--images-dir`` (local copies, e.g. an unzipped val2017/) or download it by its
   ``coco_url`` (``--download``): a thread pool, timeouts, retries with exponential backoff, resume of partial
   files with HTTP Range, and a size check -- bytes go to ``NAME.part`` and are renamed only when the length matches
   the server's and the image decodes, so a failed download never passes as complete later.
4. Scale the short side and cut the centre square at each ``--sizes`` value; write shards + manifest
   (:mod:`cvaelib.data.shards`).  Open with ``cvaelib.data.load_prepared(OUT, split="val", size=64)``:
   ``meta["captions"][label]`` lists the captions of each image.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image


if __package__ in (None, ""):  # run as a file (python data_prep/coco.py): the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cvaelib.data.shards import ShardWriter, images_key
from cvaelib.errors import DataError

from data_prep.common import (IMAGE_ERRORS, BadImage, build_split, center_square, decode, finish, Formatter, Log, make_pool,
                     Parser, positive_int, require_images, run, to_chw)

#: nature / bucolic theme (plurals are added automatically: cow -> cows, pony -> ponies, calf -> calves)
DEFAULT_KEYWORDS = [
    "field", "meadow", "pasture", "farm", "farmland", "barn", "countryside", "rural", "cow", "cattle", "calf",
    "sheep", "lamb", "goat", "horse", "pony", "tree", "forest", "woods", "mountain", "hill", "hillside", "valley",
    "lake", "river", "stream", "pond", "grass", "grassy", "hay", "flower", "wildflower",
]
COCO_HOST = "http://images.cocodataset.org/"
USER_AGENT = "cvae-course-kit data_prep (+https://cocodataset.org)"

HOW_TO_GET = """\
How to get the COCO 2017 captions (241 MB zip, holds captions_train2017.json and captions_val2017.json):
    wget http://images.cocodataset.org/annotations/annotations_trainval2017.zip
    unzip -j annotations_trainval2017.zip 'annotations/captions_*2017.json' -d coco/annotations
Images: either let this script download only the selected ones (--download; about 160 KB each), or use local
copies (--images-dir) from http://images.cocodataset.org/zips/val2017.zip (0.8 GB) / train2017.zip (18 GB).
On Colab keep --out (and --cache) on Google Drive so a disconnect does not lose finished shards and downloads:
    python -m data_prep.coco --annotations coco/annotations/captions_train2017.json \\
        coco/annotations/captions_val2017.json --download --out /content/drive/MyDrive/prepared/coco
"""


# ---------------------------------------------------------------------------------------------- keyword filter
def word_forms(word: str) -> list[str]:
    """A keyword and its regular English plural(s): ``cow -> cow, cows``; ``pony -> ponies``; ``calf -> calves``."""
    word = word.strip().lower()
    forms = {word, word + "s", word + "es"}
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    if word.endswith("f"):
        forms.add(word[:-1] + "ves")
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    return sorted(forms, key=lambda f: (-len(f), f))


def keyword_regex(words: Iterable[str]) -> re.Pattern | None:
    """One case-insensitive pattern matching any of ``words`` (or a plural) as a whole word; ``None`` if empty.

    Multi-word keywords (``"hay bale"``) match across any whitespace; the plural applies to the last word.
    """
    alternatives = []
    for word in words:
        parts = word.strip().split()
        if not parts:
            continue
        head = r"\s+".join(re.escape(p) for p in parts[:-1])
        tail = "(?:" + "|".join(re.escape(f) for f in word_forms(parts[-1])) + ")"
        alternatives.append(rf"{head}\s+{tail}" if head else tail)
    if not alternatives:
        return None
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def caption_matches(caption: str, pattern: re.Pattern | None) -> list[str]:
    """The keyword hits in one caption (lower-cased), e.g. ``["cows", "field"]``."""
    return [] if pattern is None else [m.group(0).lower() for m in pattern.finditer(caption)]


def select_images(images: list[dict], keywords: Iterable[str] = DEFAULT_KEYWORDS, exclude: Iterable[str] = (),
                  min_matches: int = 1) -> list[dict]:
    """Images (dicts with ``captions``) with >= ``min_matches`` captions hitting a keyword and none an exclusion.

    Each returned dict gains ``matched``: the sorted set of keyword forms found.
    """
    keep_re, drop_re = keyword_regex(keywords), keyword_regex(exclude)
    out = []
    for img in images:
        hits = [caption_matches(c, keep_re) for c in img["captions"]]
        if sum(bool(h) for h in hits) < min_matches:
            continue
        if drop_re is not None and any(drop_re.search(c) for c in img["captions"]):
            continue
        out.append({**img, "matched": sorted({w for h in hits for w in h})})
    return out


# ---------------------------------------------------------------------------------------------- annotations
def split_of(path: Path, data: dict) -> tuple[str, str]:
    """``("train"|"val", "train2017"|"val2017")`` from the file name, else from the images' coco_url."""
    name = path.name.lower()
    for split in ("val", "train"):
        if f"{split}20" in name:
            year = re.search(rf"{split}(20\d\d)", name)
            return split, f"{split}{year.group(1) if year else '2017'}"
    url = (data.get("images") or [{}])[0].get("coco_url", "")
    m = re.search(r"/(train|val)(20\d\d)/", url)
    if m:
        return m.group(1), m.group(1) + m.group(2)
    raise DataError(f"cannot tell whether {path} is train or val (name it captions_train2017.json / "
                    f"captions_val2017.json)")


def load_captions(path: str | os.PathLike) -> tuple[str, str, list[dict], dict]:
    """Read an official COCO captions file.

    Returns:
        ``(split, folder, images, info)``: images sorted by id, each ``{"id", "file_name", "coco_url", "flickr_url",
        "license", "width", "height", "captions": [...]}``; ``info`` holds the file's ``licenses`` list.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"annotation file {path} not found; download steps: python -m data_prep.coco --how-to-get")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not valid JSON ({type(exc).__name__}); re-download the annotations") from None
    if not isinstance(data, dict) or not {"images", "annotations"} <= data.keys():
        raise DataError(f"{path} lacks 'images'/'annotations'; is it a COCO captions file (captions_*2017.json)?")
    if data["annotations"] and "caption" not in data["annotations"][0]:
        raise DataError(f"{path} has no captions (an instances file?); use captions_train2017/val2017.json")
    split, folder = split_of(path, data)
    captions: dict[int, list[str]] = {}
    for ann in sorted(data["annotations"], key=lambda a: a.get("id", 0)):
        captions.setdefault(ann["image_id"], []).append(" ".join(str(ann["caption"]).split()))
    keys = ("id", "file_name", "coco_url", "flickr_url", "license", "width", "height")
    images = [{**{k: im.get(k) for k in keys}, "captions": captions.get(im["id"], [])}
              for im in sorted(data["images"], key=lambda im: im["id"])]
    return split, folder, images, {"licenses": data.get("licenses", [])}


# ---------------------------------------------------------------------------------------------- downloads
class DownloadError(Exception):
    """A file could not be fetched completely: ``permanent`` for HTTP errors such as 404 (retrying is useless),
    else a network failure that persisted through all attempts (a later run tries again)."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class _Retry(Exception):
    pass


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/200"`` -> ``(100, 200)``; ``"bytes */200"`` -> ``(None, 200)``."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    return (int(m.group(1)) if m.group(1) else None), (int(m.group(2)) if m.group(2) != "*" else None)


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue ``part`` from its current length (HTTP Range) and check the final length."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if not isinstance(url, str) or not re.match(r"https?://", url):
        raise DownloadError(f"not an http(s) URL: {url!r}", permanent=True)
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part may already be whole
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink(missing_ok=True)
            raise _Retry(f"stale partial file ({have} bytes) discarded") from None
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise _Retry(f"HTTP {exc.code}") from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason}", permanent=True) from None
    with resp:
        if have and resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:  # the server resumed somewhere else: start over rather than splice wrong bytes
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:  # 200: the server ignored Range (or there was nothing to resume): the body is the whole file
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        with open(part, mode) as fh:
            while True:
                block = resp.read(1 << 16)
                if not block:
                    break
                fh.write(block)
    size = part.stat().st_size
    if total is not None and size != total:
        # http.client returns a short body without an error when the peer closes early: only this catches it
        raise _Retry(f"connection dropped at {size} of {total} bytes")


def check_image_file(path: Path) -> None:
    """Raise :class:`BadImage` unless ``path`` is a readable image (header and structure, fast)."""
    try:
        with Image.open(path) as img:
            img.verify()
    except IMAGE_ERRORS as exc:
        raise BadImage(f"{type(exc).__name__}: {exc}") from None


def download(url: str, dest: str | os.PathLike, timeout: float = 30.0, retries: int = 4, backoff: float = 1.0,
             validate: Callable[[Path], None] | None = check_image_file,
             sleep: Callable[[float], None] = time.sleep) -> Path:
    """Fetch ``url`` to ``dest`` resumably; return ``dest``.  An existing ``dest`` is trusted (it was only ever
    created by renaming a complete, validated ``.part``).

    Bytes go to ``dest + ".part"``; after a timeout or dropped connection the next attempt asks for the rest with
    HTTP Range (or starts over when the server ignores it).  The ``.part`` is renamed only when its length equals
    the server's and ``validate`` accepts it.  Attempts: ``1 + retries``, waiting ``backoff * 2**k`` seconds between.

    Raises:
        DownloadError: permanent HTTP error (404, 403, ...) or still incomplete after all attempts.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_once(url, part, timeout)
            if validate is not None:
                try:
                    validate(part)
                except BadImage as exc:
                    part.unlink(missing_ok=True)  # complete but unusable: fetch it again from scratch
                    raise _Retry(f"not a valid image ({exc})") from None
            os.replace(part, dest)
            return dest
        except _Retry as exc:
            reason = str(exc)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # timeouts, resets, DNS
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    raise DownloadError(f"{url}: gave up after {retries + 1} attempts ({reason}); run again to resume")


# ---------------------------------------------------------------------------------------------- preparation
def _local_path(images_dir: Path | None, folder: str, file_name: str) -> Path | None:
    if images_dir is None:
        return None
    for cand in (images_dir / file_name, images_dir / folder / file_name):
        if cand.is_file():
            return cand
    return None


def _process(path: Path, record: dict, sizes: Sequence[int]) -> dict[str, np.ndarray]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadImage(f"cannot read {path}: {exc}") from None
    biggest = max(sizes)
    img = decode(data, draft_to=(2 * biggest, 2 * biggest))
    want = (record.get("width"), record.get("height"))
    if None not in want and tuple(img.info["full_size"]) != want:
        raise BadImage(f"size {img.info['full_size']} differs from the annotation's {want} (wrong or damaged file)")
    return {images_key("center", s): to_chw(center_square(img, s)) for s in sizes}


def prepare_coco(annotations: Sequence[str | os.PathLike], out: str | os.PathLike,
                 images_dir: str | os.PathLike | None = None, download_missing: bool = False,
                 cache: str | os.PathLike | None = None, keywords: Sequence[str] = DEFAULT_KEYWORDS,
                 exclude: Sequence[str] = (), min_matches: int = 1, sizes: Sequence[int] = (64, 128),
                 limit: int | None = None, shard_size: int = 5000, workers: int = 16, timeout: float = 30.0,
                 retries: int = 4, backoff: float = 1.0, mirror: str | None = None, verify: bool = True,
                 log=None, prep_command: str = "") -> dict:
    """Select, fetch and shard a themed COCO subset (see module doc). Re-running skips finished shards.

    Args:
        annotations: captions files (``captions_train2017.json`` and/or ``captions_val2017.json``).
        out: prepared folder.
        images_dir: folder with local images (``file_name`` directly in it, or in ``train2017/``/``val2017/``).
        download_missing: fetch images not found locally by their ``coco_url`` into ``cache``.
        cache: download folder (default ``OUT/raw``; files land in ``CACHE/val2017/...``).
        keywords / exclude / min_matches: the caption filter (:func:`select_images`).
        sizes: output sides (centre square).
        limit: keep only the first ``limit`` selected images (by id) of each split.
        mirror: replace ``http://images.cocodataset.org/`` in image URLs by this prefix (a local mirror).

    Returns:
        The manifest (dict).
    """
    log = Log.of(log)
    if not annotations:
        raise DataError("give at least one --annotations file; download steps: python -m data_prep.coco --how-to-get")
    if images_dir is None and not download_missing:
        raise DataError("say where images come from: --images-dir DIR (local copies) and/or --download")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise DataError(f"--images-dir {images_dir} is not a folder")
    if min_matches < 1:
        raise DataError(f"--min-matches must be >= 1, got {min_matches}")
    sizes = sorted({int(s) for s in sizes})
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "raw"
    images_dir = Path(images_dir) if images_dir is not None else None
    splits: dict[str, tuple[str, list[dict]]] = {}
    licenses, sources = [], {}
    for ann in annotations:
        split, folder, images, extra = load_captions(ann)
        if split in splits:
            raise DataError(f"two annotation files for the {split} split ({sources[split]} and {ann}); give one each")
        chosen = select_images(images, keywords, exclude, min_matches)
        log(f"{Path(ann).name}: {split} split, {len(images)} images, {len(chosen)} match the theme")
        splits[split] = (folder, chosen[:limit] if limit else chosen)
        licenses = licenses or extra["licenses"]
        sources[split] = str(ann)
    config = {"sizes": sizes, "variants": ["center"], "default_variant": "center", "shard_size": shard_size,
              "keywords": sorted({k.lower() for k in keywords}), "exclude": sorted({e.lower() for e in exclude}),
              "min_matches": min_matches, "crop": "short side scaled to size, centre square",
              "resample": "bicubic (antialiased)"}
    info = {"annotations": sources, "licenses": licenses, "limit": limit,
            "selected": {s: len(v[1]) for s, v in splits.items()},
            "attribution": "COCO captions CC BY 4.0; each image keeps its Flickr licence (records: license, "
                           "flickr_url)"}
    writer = ShardWriter(out, "coco", config, info, prep_command=prep_command, verify=verify, log=log)
    shapes = {images_key("center", s): ((3, s, s), np.uint8) for s in sizes}
    shown = [0]
    with make_pool(workers) as pool:
        for split, (folder, chosen) in splits.items():

            def work(rec: dict, folder: str = folder):
                path = _local_path(images_dir, folder, rec["file_name"])
                if path is None and download_missing:
                    url = rec["coco_url"]
                    if mirror and isinstance(url, str):
                        url = url.replace(COCO_HOST, mirror.rstrip("/") + "/")
                    try:
                        path = download(url, cache / folder / rec["file_name"], timeout, retries, backoff)
                    except DownloadError as exc:
                        raise BadImage(f"download failed: {exc}", retry=not exc.permanent) from None
                if path is None:
                    raise BadImage(f"not found in {images_dir} (nor {images_dir}/{folder}); add --download to "
                                   f"fetch it", retry=True)
                return _process(path, rec, sizes), rec

            entry = build_split(writer, pool, split, chosen, shard_size, work, shapes, log,
                                lambda rec: {"name": rec["file_name"], "id": rec["id"]}, shown)
            if chosen:
                require_images(entry, split)
    return finish(writer, log)


def build_parser() -> Parser:
    p = Parser(prog="data_prep.coco", formatter_class=Formatter,
               description="Select a themed COCO 2017 subset by caption keywords (whole words), fetch only those "
                           "images, and store them at 64 and 128 px with all their captions.\n\n" + HOW_TO_GET,
               epilog="examples:\n"
                      "  # the kit's 100-image sample, images already local\n"
                      "  python -m data_prep.coco --annotations ../shared/data/coco_sample/annotations/"
                      "captions_val2017_sample.json \\\n"
                      "      --images-dir ../shared/data/coco_sample/val2017 --out prepared/coco_sample\n"
                      "  # full train + val, downloading only the selected images\n"
                      "  python -m data_prep.coco --annotations captions_train2017.json captions_val2017.json "
                      "--download --out prepared/coco\n"
                      "  # another theme, without urban scenes\n"
                      "  python -m data_prep.coco ... --keywords beach ocean wave surfboard --exclude street city\n"
                      "then in Python: cvaelib.data.load_prepared('prepared/coco', split='val', size=64)")
    p.add_argument("--annotations", nargs="+", metavar="FILE",
                   help="captions_train2017.json and/or captions_val2017.json (official COCO format)")
    p.add_argument("--out", help="output folder for shards and manifest.json")
    p.add_argument("--images-dir", default=None, help="local images (file_name in it, or in train2017/ val2017/)")
    p.add_argument("--download", action="store_true", help="download selected images missing locally by coco_url")
    p.add_argument("--cache", default=None, help="where downloads go (default: OUT/raw)")
    p.add_argument("--keywords", nargs="+", default=DEFAULT_KEYWORDS, metavar="WORD",
                   help="theme words, whole-word and case-insensitive, plurals added (default: a nature/bucolic set: "
                        + " ".join(DEFAULT_KEYWORDS) + ")")
    p.add_argument("--exclude", nargs="*", default=[], metavar="WORD",
                   help="drop an image when any caption contains one of these words")
    p.add_argument("--min-matches", type=positive_int, default=1,
                   help="captions (of ~5) per image that must mention a keyword")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[64, 128], help="output sides in pixels")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N selected images per split")
    p.add_argument("--shard-size", type=positive_int, default=5000, help="images per shard")
    p.add_argument("--workers", type=positive_int, default=16, help="download/decoding threads")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a stalled download is retried")
    p.add_argument("--retries", type=int, default=4, help="extra attempts per image")
    p.add_argument("--backoff", type=float, default=1.0, help="seconds before the first retry (doubles each time)")
    p.add_argument("--mirror", default=None, help=f"URL prefix replacing {COCO_HOST} (a local mirror)")
    p.add_argument("--dry-run", action="store_true", help="only report how many images the filter selects")
    p.add_argument("--no-verify", action="store_true", help="on resume, trust finished shards without re-hashing")
    p.add_argument("--quiet", action="store_true", help="print only skipped images and the summary")
    p.add_argument("--how-to-get", action="store_true", help="print how to download COCO captions/images and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.how_to_get:
        print(HOW_TO_GET)
        return 0
    if not args.annotations:
        raise DataError("--annotations FILE is needed; download steps: python -m data_prep.coco --how-to-get")
    if args.dry_run:
        for ann in args.annotations:
            split, _, images, _ = load_captions(ann)
            chosen = select_images(images, args.keywords, args.exclude, args.min_matches)
            counts: dict[str, int] = {}
            for img in chosen:
                for w in img["matched"]:
                    counts[w] = counts.get(w, 0) + 1
            top = ", ".join(f"{w} {n}" for w, n in sorted(counts.items(), key=lambda kv: -kv[1])[:12])
            print(f"{ann}: {split}, {len(chosen)} of {len(images)} images selected; top words: {top}")
        return 0
    if not args.out:
        raise DataError("--out DIR is needed (where shards and manifest.json go)")
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        raise DataError(f"--retries and --backoff must be >= 0 and --timeout > 0 (got {args.retries}, "
                        f"{args.backoff}, {args.timeout})")
    command = "python -m data_prep.coco " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                              else sys.argv[1:]))
    prepare_coco(args.annotations, args.out, args.images_dir, args.download, args.cache, args.keywords,
                 args.exclude, args.min_matches, args.sizes, args.limit, args.shard_size, args.workers,
                 args.timeout, args.retries, args.backoff, mirror=args.mirror, verify=not args.no_verify,
                 log=Log(args.quiet), prep_command=command)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
