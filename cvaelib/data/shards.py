"""Prepared datasets on disk: uint8 ``.npy`` shards plus one JSON manifest, written resumably, read by memory map.

The prep scripts (``python -m data_prep.celeba`` / ``python -m data_prep.coco``) decode thousands of JPEGs once and
store the result here, so a notebook loads CelebA or a COCO subset in a second instead of decoding for minutes.

Layout of a prepared folder::

    OUT/manifest.json                       what is there, with counts and sha256 checksums (see below)
    OUT/train-00000.images_zoom_64.npy      uint8 [n, 3, 64, 64]  (one file per array kind and shard)
    OUT/train-00000.attributes.npy          uint8 [n, 40] (CelebA only: 0/1 multi-hot)
    OUT/train-00000.records.json            one record per item (file name; COCO: id, captions, licence, url)

A *shard* is a fixed-size chunk (``shard_size`` source items) of one split; it holds every image size and variant
of those items.  A re-run redoes only the shards the manifest does not list as intact (or that skipped items for a
reason that may have gone away: a missing file, a failed download).  Every file is written as ``NAME.part`` and
renamed only when complete; the manifest (also replaced atomically) lists a shard only after all its files are in
place, so a crash never leaves a shard that later passes as finished.

Manifest (``format: cvaelib-shards/1``)::

    {"format", "dataset", "prep_command", "created", "updated",
     "config":  {..., "sizes": [64], "variants": ["zoom", "wide"], "default_variant": "zoom", "shard_size": ...},
     "info":    {...dataset facts, e.g. "attribute_names": [40 names]...},
     "splits":  {"train": {"complete": true, "count": N, "skipped": k, "source_count": M, "planned_shards": S,
                           "shards": [{"index": 0, "first": 0, "source_count": m, "count": n,
                                       "skipped": [{"name": ..., "reason": ..., "retry": false}],
                                       "files": {"images_zoom_64": {"file", "bytes", "sha256", "shape", "dtype"},
                                                 ..., "records": {"file", "bytes", "sha256"}}}]}}}

:func:`load_prepared` opens one split as an :class:`~cvaelib.data.ImageData`.  A single-shard split is memory-mapped
copy-on-write (nothing is read until used, writes never reach the file); several shards are copied into one array
(CelebA train at 64 px: 2.0 GB per variant).  File names in the manifest are relative: the folder can be moved.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .datasets import ImageData

FORMAT = "cvaelib-shards/1"
MANIFEST = "manifest.json"

#: how to rebuild a prepared folder, by dataset name (used in error messages when the manifest cannot be read)
PREP_COMMANDS = {
    "celeba": "python -m data_prep.celeba --src CELEBA_DIR --out {out}",
    "coco": "python -m data_prep.coco --annotations captions_val2017.json --download --out {out}",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as fh:  # a file object: np.save would append ".npy" to a ".part" name
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def images_key(variant: str, size: int) -> str:
    """Array name of one image variant and size inside a shard (``images_zoom_64``)."""
    return f"images_{variant}_{int(size)}"


def _prep_hint(folder: Path, dataset: str | None) -> str:
    if dataset in PREP_COMMANDS:
        return PREP_COMMANDS[dataset].format(out=folder)
    return " or ".join(cmd.format(out=folder) for cmd in PREP_COMMANDS.values())


class ShardWriter:
    """Writes the shards of one prepared folder and keeps its manifest up to date.

    Args:
        out: the prepared folder (created if needed).
        dataset: ``"celeba"`` or ``"coco"`` (recorded in the manifest; the reader picks labels by it).
        config: what is produced (sizes, variants, default_variant, shard_size, ...).  A folder prepared with a
            different config is rebuilt from scratch, because its shards hold other arrays.
        info: dataset facts stored in the manifest (e.g. ``attribute_names``).
        prep_command: the command line that rebuilds the folder (quoted in error messages).
        verify: on resume, re-hash finished shards (sha256) instead of only checking their sizes.
        log: where progress lines go (``print`` to stderr by default).
    """

    def __init__(self, out: str | os.PathLike, dataset: str, config: dict, info: dict | None = None,
                 prep_command: str = "", verify: bool = True, log=None) -> None:
        self.out = Path(out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create the output folder {self.out} ({exc.strerror or exc}); choose another "
                            f"--out") from None
        self.path = self.out / MANIFEST
        self.verify = verify
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        config = json.loads(json.dumps(config))  # normalise tuples -> lists so comparisons with JSON work
        fresh = {"format": FORMAT, "dataset": dataset, "prep_command": prep_command, "created": _now(),
                 "updated": _now(), "config": config, "info": info or {}, "splits": {}}
        old = self._read_existing()
        if old is not None and old.get("dataset") == dataset and old.get("config") == config:
            self.manifest = old
            self.manifest["info"] = info or {}
            self.manifest["prep_command"] = prep_command or old.get("prep_command", "")
        else:
            if old is not None:
                self.log(f"{self.path}: settings changed since the last run; rebuilding all shards")
                self._remove_files(old)
            self.manifest = fresh
        self._save()

    def _read_existing(self) -> dict | None:
        if not self.path.is_file():
            return None
        try:
            manifest = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.log(f"{self.path} is unreadable; starting over")
            return None
        return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None

    def _remove_files(self, manifest: dict) -> None:
        """Delete the shard files an older manifest lists (they would otherwise linger, orphaned, on disk)."""
        for split in manifest.get("splits", {}).values():
            for entry in split.get("shards", []):
                for meta in entry.get("files", {}).values():
                    name = Path(str(meta.get("file", "")))
                    if name.name and name.name == str(name):  # a bare file name inside this folder only
                        (self.out / name).unlink(missing_ok=True)

    def _save(self) -> None:
        self.manifest["updated"] = _now()
        _atomic_write_bytes(self.path, (json.dumps(self.manifest, indent=1) + "\n").encode())

    def _split(self, split: str) -> dict:
        return self.manifest["splits"].setdefault(split, {"complete": False, "count": 0, "skipped": 0,
                                                          "source_count": 0, "planned_shards": 0, "shards": []})

    def shard_file(self, split: str, index: int, key: str) -> Path:
        """Where array ``key`` (or ``records``) of shard ``index`` lives."""
        ext = "json" if key == "records" else "npy"
        return self.out / f"{split}-{index:05d}.{key}.{ext}"

    def is_done(self, split: str, index: int, first: int, source_count: int) -> bool:
        """True when shard ``index`` covering source items ``[first, first + source_count)`` is finished and intact."""
        entry = next((s for s in self._split(split)["shards"] if s["index"] == index), None)
        if entry is None or entry["first"] != first or entry["source_count"] != source_count:
            return False
        retry = [s for s in entry.get("skipped", []) if s.get("retry")]
        if retry:
            self.log(f"{split} shard {index + 1}: retrying {len(retry)} item(s) that were missing or failed to "
                     f"download last time (e.g. {retry[0].get('name', '?')})")
            return False
        for meta in entry["files"].values():
            path = self.out / meta["file"]
            if not path.is_file() or path.stat().st_size != meta["bytes"]:
                return False
            if self.verify and sha256_file(path) != meta["sha256"]:
                self.log(f"{path} does not match its checksum; redoing shard {index} of {split}")
                return False
        return True

    def write(self, split: str, index: int, first: int, source_count: int, arrays: dict[str, np.ndarray],
              records: list[dict], skipped: Sequence[dict] = ()) -> dict:
        """Write one shard atomically and record it in the manifest. Returns its manifest entry."""
        counts = {len(records)} | {int(a.shape[0]) for a in arrays.values()}
        if len(counts) != 1:
            raise ValueError(f"shard {index} of {split}: arrays and records disagree on the item count {counts}")
        files = {}
        try:
            for key, array in arrays.items():
                path = self.shard_file(split, index, key)
                _save_npy(path, array)
                files[key] = {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path),
                              "shape": list(array.shape), "dtype": str(array.dtype)}
            path = self.shard_file(split, index, "records")
            _atomic_write_bytes(path, json.dumps(records, ensure_ascii=False).encode())
            files["records"] = {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
            entry = {"index": index, "first": first, "source_count": source_count, "count": counts.pop(),
                     "skipped": list(skipped), "files": files}
            shards = [s for s in self._split(split)["shards"] if s["index"] != index] + [entry]
            self._split(split)["shards"] = sorted(shards, key=lambda s: s["index"])
            self._save()
        except OSError as exc:  # disk full, Drive unmounted, read-only folder...
            for part in self.out.glob(f"{split}-{index:05d}.*.part"):
                part.unlink(missing_ok=True)
            raise DataError(f"cannot write shard {index + 1} of {split} into {self.out} ({exc.strerror or exc}); "
                            f"free space or fix the folder, then re-run: finished shards are kept") from None
        return entry

    def finish_split(self, split: str, planned_shards: int, source_count: int) -> dict:
        """Mark a split complete once shards ``0..planned_shards-1`` are all recorded; drop stale shards/files."""
        info = self._split(split)
        keep = [s for s in info["shards"] if s["index"] < planned_shards]
        stale = [s for s in info["shards"] if s["index"] >= planned_shards]
        for entry in stale:
            for meta in entry["files"].values():
                (self.out / meta["file"]).unlink(missing_ok=True)
        info["shards"] = keep
        info["planned_shards"] = planned_shards
        info["source_count"] = source_count
        info["count"] = sum(s["count"] for s in keep)
        info["skipped"] = sum(len(s["skipped"]) for s in keep)
        info["complete"] = sorted(s["index"] for s in keep) == list(range(planned_shards))
        self._save()
        return info


def write_shards(out: str | os.PathLike, dataset: str, split: str, arrays: dict[str, np.ndarray],
                 records: list[dict], config: dict, info: dict | None = None, shard_size: int = 10_000,
                 prep_command: str = "") -> dict:
    """Write in-memory arrays of one split as shards (a convenience over :class:`ShardWriter`).

    Args:
        out: prepared folder.
        dataset: ``"celeba"`` or ``"coco"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        arrays: name -> array with the items on axis 0 (e.g. ``images_zoom_64`` uint8 ``[N, 3, 64, 64]``).
        records: one JSON-able dict per item.
        config: must hold ``sizes``, ``variants`` and ``default_variant`` for :func:`load_prepared`.
        shard_size: items per shard.

    Returns:
        The split's manifest entry.
    """
    writer = ShardWriter(out, dataset, {**config, "shard_size": shard_size}, info, prep_command)
    n = len(records)
    planned = max(1, -(-n // shard_size))
    for index in range(planned):
        lo, hi = index * shard_size, min(n, (index + 1) * shard_size)
        if writer.is_done(split, index, lo, hi - lo):
            continue
        writer.write(split, index, lo, hi - lo, {k: v[lo:hi] for k, v in arrays.items()}, records[lo:hi])
    return writer.finish_split(split, planned, n)


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a prepared folder, or a :class:`DataError` that names the prep command."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise DataError(f"prepared folder {folder} does not exist; prepare it with: {_prep_hint(folder, None)}")
    if not path.is_file():
        raise DataError(f"{path} not found (folder not prepared, or prep never finished a shard); "
                        f"prepare it with: {_prep_hint(folder, None)}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is corrupt ({type(exc).__name__}); delete it and re-run: "
                        f"{_prep_hint(folder, None)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "splits" not in manifest:
        raise DataError(f"{path} is not a {FORMAT} manifest; re-run: {_prep_hint(folder, None)}")
    return manifest


def _open_npy(path: Path, meta: dict, hint: str, verify: bool) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} is missing; re-run the prep (it resumes): {hint}")
    if path.stat().st_size != meta["bytes"] or (verify and sha256_file(path) != meta["sha256"]):
        raise DataError(f"{path} is truncated or corrupt (does not match the manifest); delete it and re-run the "
                        f"prep (it resumes): {hint}")
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)  # copy-on-write: writes never reach the file
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} cannot be read as .npy ({exc}); delete it and re-run: {hint}") from None
    if list(array.shape) != meta["shape"] or str(array.dtype) != meta["dtype"]:
        raise DataError(f"{path} holds {array.dtype}{list(array.shape)}, the manifest says "
                        f"{meta['dtype']}{meta['shape']}; delete it and re-run: {hint}")
    return array


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]  # a lone shard stays memory-mapped
    out = np.empty((sum(p.shape[0] for p in parts),) + parts[0].shape[1:], dtype=parts[0].dtype)
    pos = 0
    for part in parts:
        out[pos:pos + part.shape[0]] = part
        pos += part.shape[0]
    return out


def _records(path: Path, meta: dict, hint: str) -> list[dict]:
    try:
        data = path.read_bytes()
    except OSError:
        raise DataError(f"{path} is missing; re-run the prep (it resumes): {hint}") from None
    if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise DataError(f"{path} does not match the manifest; delete it and re-run the prep: {hint}")
    return json.loads(data)


def prepared_splits(folder: str | os.PathLike) -> dict[str, int]:
    """Split name -> item count of a prepared folder (complete splits only)."""
    manifest = read_manifest(folder)
    return {name: info["count"] for name, info in manifest["splits"].items() if info.get("complete")}


def load_prepared(folder: str | os.PathLike, split: str = "train", size: int = 64, variant: str | None = None,
                  limit: int | None = None, verify: bool = False) -> ImageData:
    """Open one split of a folder made by ``data_prep.celeba`` or ``data_prep.coco``.

    Args:
        folder: the prep script's ``--out`` folder (holds ``manifest.json``).
        split: ``"train"``, ``"val"`` or ``"test"`` (COCO: ``"train"``/``"val"``).
        size: image side in pixels (one of the prep's ``--sizes``).
        variant: CelebA ``"zoom"`` (face only, the default) or ``"wide"`` (face, hair and neck); COCO ``"center"``.
        limit: keep only the first ``limit`` items (reads only the shards needed).
        verify: re-hash every file against the manifest (slower; sizes and shapes are always checked).

    Returns:
        :class:`ImageData` with ``images`` uint8 ``[N, 3, size, size]``.  CelebA: ``labels`` float32 multi-hot
        ``[N, 40]``, ``class_names`` = ``meta["attribute_names"]``.  COCO: ``labels`` int64 item index into
        ``meta["captions"]`` (a list of caption lists, one per image), so ``take`` keeps captions reachable.
        ``meta`` also holds ``file_names``, ``split``, ``size``, ``variant`` and the manifest ``info``.

    Raises:
        DataError: missing/corrupt manifest or shard, unfinished prep, unknown split, size or variant.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    dataset = manifest.get("dataset", "")
    hint = manifest.get("prep_command") or _prep_hint(folder, dataset)
    config = manifest.get("config", {})
    splits = manifest["splits"]
    if split not in splits:
        have = ", ".join(sorted(splits)) or "none"
        raise DataError(f"{folder} has no {split!r} split (prepared: {have}); re-run the prep: {hint}")
    info = splits[split]
    if not info.get("complete"):
        raise DataError(f"the prep of {folder} stopped before finishing the {split!r} split "
                        f"({len(info['shards'])} of {info.get('planned_shards') or '?'} shards); "
                        f"re-run it, it resumes: {hint}")
    variant = variant or config.get("default_variant")
    sizes, variants = config.get("sizes", []), config.get("variants", [])
    if variant not in variants:
        raise DataError(f"variant {variant!r} not prepared in {folder}; choose one of: {', '.join(variants)}")
    if int(size) not in sizes:
        raise DataError(f"size {size} not prepared in {folder} (have {', '.join(map(str, sizes))}); re-run the prep "
                        f"with --sizes {' '.join(map(str, sorted(set(sizes) | {int(size)})))}")
    key = images_key(variant, size)
    images, attrs, records = [], [], []
    for entry in info["shards"]:
        if limit is not None and len(records) >= limit:
            break
        files = entry["files"]
        if key not in files:
            raise DataError(f"shard {entry['index']} of {split} lacks {key}; re-run the prep: {hint}")
        images.append(_open_npy(folder / files[key]["file"], files[key], hint, verify))
        if "attributes" in files:
            attrs.append(_open_npy(folder / files["attributes"]["file"], files["attributes"], hint, verify))
        records.extend(_records(folder / files["records"]["file"], files["records"], hint))
    n = len(records) if limit is None else min(limit, len(records))
    records = records[:n]
    image_array = _concat(images)[:n] if images else np.zeros((0, 3, size, size), np.uint8)
    extra = dict(manifest.get("info", {}))
    meta = {"split": split, "size": int(size), "variant": variant, "folder": str(folder), "dataset": dataset,
            "file_names": [r.get("file_name", "") for r in records], **extra}
    if attrs:
        labels = torch.from_numpy(_concat(attrs)[:n].astype(np.float32))
        names = list(extra.get("attribute_names", [f"attr{i}" for i in range(labels.shape[1])]))
    else:
        labels = torch.arange(n, dtype=torch.int64)
        names = []
    if dataset == "coco":
        meta["captions"] = [list(r.get("captions", [])) for r in records]
        meta["image_ids"] = [r.get("id") for r in records]
        meta["records"] = records
    return ImageData(torch.from_numpy(image_array), labels, names, dataset, meta)

