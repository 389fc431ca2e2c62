"""Data preparation: CelebA layouts, crop geometry, attribute parsing, the word-boundary caption filter, resumable
downloads against a local flaky server, resume after interruption, corrupt files, and the shard reader."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvaelib.data import load_prepared, prepared_splits, read_manifest, write_shards
from cvaelib.data import shards as shards_mod
from cvaelib.errors import DataError
from data_prep import celeba, coco
from data_prep.common import Log, center_square, run
from fixtures.celeba_fixture import ATTRIBUTE_NAMES, fixture_attributes, make_celeba_fixture
from procs import child

REPO = Path(__file__).resolve().parents[1]


def _quiet() -> Log:
    return Log(quiet=True)


@pytest.fixture(scope="module")
def coco_sample(data_root) -> Path:
    root = data_root / "coco_sample"
    if not (root / "annotations" / "captions_val2017_sample.json").is_file():
        pytest.fail(f"COCO sample not found at {root}")
    return root


@pytest.fixture(scope="module")
def celeba_official(tmp_path_factory) -> Path:
    return make_celeba_fixture(tmp_path_factory.mktemp("celeba") / "official", n=24, layout="official")


# ============================================================================================ CelebA: parsing
def test_attribute_and_partition_parsing_both_formats(tmp_path):
    truth = fixture_attributes(24)
    for layout, suffix in (("official", "txt"), ("kaggle", "csv")):
        root = make_celeba_fixture(tmp_path / layout, n=24, layout=layout)
        names, table = celeba.parse_attributes(root / f"list_attr_celeba.{suffix}")
        assert names == ATTRIBUTE_NAMES and len(names) == 40
        got = np.stack([table[f"{i + 1:06d}.jpg"] for i in range(24)])
        np.testing.assert_array_equal(got, truth)
        part = celeba.parse_partition(root / f"list_eval_partition.{suffix}")
        assert {k: len(v) for k, v in part.items()} == {"train": 17, "val": 4, "test": 3}
        assert part["val"][0] == "000018.jpg"


def test_attribute_file_in_another_column_order_is_mapped(tmp_path):
    root = make_celeba_fixture(tmp_path, n=6, layout="kaggle")
    rows = [line.split(",") for line in (root / "list_attr_celeba.csv").read_text().splitlines()]
    perm = [0] + list(range(40, 0, -1))  # reverse the attribute columns
    (root / "list_attr_celeba.csv").write_text("\n".join(",".join(r[i] for i in perm) for r in rows) + "\n")
    _, table = celeba.parse_attributes(root / "list_attr_celeba.csv")
    np.testing.assert_array_equal(np.stack([table[f"{i + 1:06d}.jpg"] for i in range(6)]), fixture_attributes(6))


def test_broken_attribute_files_name_line_and_fix(tmp_path):
    root = make_celeba_fixture(tmp_path, n=6)
    path = root / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + [" ".join(lines[4].split()[:-2])] + lines[5:]) + "\n")
    with pytest.raises(DataError, match=r"line 5: 39 fields"):
        celeba.parse_attributes(path)
    path.write_text("\n".join(lines[:-2]) + "\n")  # count line says 6, only 4 rows
    with pytest.raises(DataError, match="truncated"):
        celeba.parse_attributes(path)
    (root / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(DataError, match="line 1"):
        celeba.parse_partition(root / "list_eval_partition.txt")


# ============================================================================================ CelebA: crops
def _coordinate_image() -> Image.Image:
    """Red channel = column, green = row: every crop can be read back exactly."""
    rows, cols = np.mgrid[0:218, 0:178]
    arr = np.stack([cols, rows, np.full_like(rows, 7)], -1).astype(np.uint8)
    return Image.fromarray(arr)


def test_crop_geometry_zoom_and_wide():
    img = _coordinate_image()
    zoom = celeba.crop_face(img, "zoom", 128)  # 128 = the box side: a pure crop
    assert zoom.shape == (3, 128, 128)
    assert (zoom[0, 0, 0], zoom[1, 0, 0]) == (25, 45)            # top-left pixel is (row 45, col 25)
    assert (zoom[0, -1, -1], zoom[1, -1, -1]) == (152, 172)      # bottom-right is (row 172, col 152)
    wide = celeba.crop_face(img, "wide", 178)
    assert (wide[0, 0, 0], wide[1, 0, 0], wide[0, -1, -1], wide[1, -1, -1]) == (0, 20, 177, 197)
    small = celeba.crop_face(img, "zoom", 64).astype(float)      # resized: still centred on the same box
    assert small.shape == (3, 64, 64)
    assert abs(small[0].mean() - 88.5) < 1 and abs(small[1].mean() - 108.5) < 1  # box centres, +0.5 rounding
    assert np.all(np.diff(small[0, 32, 2:-2]) > 0) and np.all(np.diff(small[1, 2:-2, 32]) > 0)
    with pytest.raises(celeba.BadImage, match="178x218"):
        celeba.crop_face(img.resize((200, 200)), "zoom", 64)


def test_fixture_marks_show_in_the_right_variant(celeba_official, tmp_path):
    celeba.prepare_celeba(celeba_official, tmp_path, sizes=(64,), log=_quiet())
    zoom = load_prepared(tmp_path, "train", 64, "zoom").images.numpy().astype(int)
    wide = load_prepared(tmp_path, "train", 64, "wide").images.numpy().astype(int)

    def green(x):  # the fixture's "shirt" band: rows 180:198 of the original, seen by the wide crop only
        return (x[:, 1] > 150) & (x[:, 0] < 80) & (x[:, 2] < 80)

    assert green(wide[:, :, -4:, :]).mean() > 0.9
    assert green(zoom).mean() < 0.01
    magenta = lambda x: (x[:, 0] > 200) & (x[:, 1] < 60) & (x[:, 2] > 200)  # noqa: E731 - rows 0:18, in neither
    assert magenta(wide).mean() < 0.001 and magenta(zoom).mean() < 0.001


# ============================================================================================ CelebA: layouts
def test_official_kaggle_and_zip_layouts_give_identical_shards(tmp_path):
    outs = {}
    for layout in ("official", "kaggle", "zip"):
        src = make_celeba_fixture(tmp_path / "src" / layout, n=24, layout=layout)
        manifest = celeba.prepare_celeba(src, tmp_path / "out" / layout, log=_quiet())
        assert manifest["info"]["layout"] == {"official": "official", "kaggle": "kaggle",
                                              "zip": "official-zip"}[layout]
        outs[layout] = tmp_path / "out" / layout
    truth = fixture_attributes(24)
    ref = {s: load_prepared(outs["official"], s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in ref.items()} == {"train": 17, "val": 4, "test": 3}
    assert ref["train"].images.shape == (17, 3, 64, 64) and ref["train"].images.dtype == torch.uint8
    assert ref["train"].labels.dtype == torch.float32 and ref["train"].labels.shape == (17, 40)
    assert ref["train"].meta["attribute_names"] == ATTRIBUTE_NAMES == ref["train"].class_names
    np.testing.assert_array_equal(ref["val"].labels.numpy(), truth[17:21])
    assert ref["test"].meta["file_names"] == ["000022.jpg", "000023.jpg", "000024.jpg"]
    for layout in ("kaggle", "zip"):
        for split in ref:
            other = load_prepared(outs[layout], split)
            assert torch.equal(other.images, ref[split].images) and torch.equal(other.labels, ref[split].labels)
    assert prepared_splits(outs["zip"]) == {"train": 17, "val": 4, "test": 3}


def test_src_may_point_above_or_at_the_image_folder(tmp_path):
    root = make_celeba_fixture(tmp_path / "dl" / "celeba", n=6, layout="kaggle")
    assert celeba.find_celeba(tmp_path / "dl").layout == "kaggle"               # one level above
    for folder in (root / "img_align_celeba", root / "img_align_celeba" / "img_align_celeba"):  # image folders
        found = celeba.find_celeba(folder)
        assert str(found.images) == str(root / "img_align_celeba" / "img_align_celeba")
        assert found.attributes == root / "list_attr_celeba.csv" and found.layout == "kaggle"
    tv = make_celeba_fixture(tmp_path / "tv" / "celeba", n=6)  # torchvision's root: ROOT/celeba/...
    assert celeba.find_celeba(tmp_path / "tv").partition == tv / "list_eval_partition.txt"


def test_missing_celeba_prints_download_steps(tmp_path, capsys):
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "list_attr_celeba.txt").write_text("0\n")
    with pytest.raises(celeba.CelebaMissing, match=r"missing img_align_celeba/\*\.jpg .*list_eval_partition"):
        celeba.find_celeba(tmp_path)
    code = run(celeba.main, ["--src", str(tmp_path), "--out", str(tmp_path / "out")], on_error=celeba._explain)
    err = capsys.readouterr().err
    assert code == 2
    assert "kaggle datasets download -d jessicali9530/celeba-dataset" in err
    assert "mmlab.ie.cuhk.edu.hk/projects/CelebA.html" in err
    assert err.strip().splitlines()[-1].startswith("error: CelebA not complete under")


def test_help_texts_explain_usage(capsys):
    for module in (celeba, coco):
        with pytest.raises(SystemExit) as exc:
            module.main(["--help"])
        assert exc.value.code == 0
    out = capsys.readouterr().out
    for needle in ("--src", "--limit", "--sizes", "zoom", "wide", "--annotations", "--images-dir", "--download",
                   "--exclude", "--keywords", "load_prepared"):
        assert needle in out, needle
    with pytest.raises(SystemExit) as exc:  # argparse error -> status 2, one line
        celeba.main(["--sizes", "0"])
    assert exc.value.code == 2
    assert "error: argument --sizes" in capsys.readouterr().err


# ============================================================================================ CelebA: faults
def test_corrupt_jpeg_is_reported_and_skipped(tmp_path, capsys):
    src = make_celeba_fixture(tmp_path / "src", n=24, corrupt=(3, 20))  # 000004 (train), 000021 (val)
    (src / "img_align_celeba" / "000010.jpg").unlink()                   # and one missing file
    code = run(celeba.main, ["--src", str(src), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0
    assert "skipped 000004.jpg" in err and "skipped 000021.jpg" in err and "3 skipped" in err
    manifest = read_manifest(tmp_path / "out")
    train, val = manifest["splits"]["train"], manifest["splits"]["val"]
    assert (train["count"], train["skipped"], val["count"], val["skipped"]) == (15, 2, 3, 1)
    reasons = {s["name"]: s["reason"] for s in train["shards"][0]["skipped"]}
    assert "truncated" in reasons["000004.jpg"] and "missing" in reasons["000010.jpg"]
    data = load_prepared(tmp_path / "out", "train")
    assert "000004.jpg" not in data.meta["file_names"] and len(data) == 15
    keep = [int(n[:6]) - 1 for n in data.meta["file_names"]]
    np.testing.assert_array_equal(data.labels.numpy(), fixture_attributes(24)[keep])  # labels stay aligned
    assert [s["retry"] for s in train["shards"][0]["skipped"]] == [False, True]  # corrupt: final; missing: retry
    # the missing file turns up (an unzip finished): the re-run redoes that shard only
    make_celeba_fixture(tmp_path / "again", n=24)
    shutil.copy(tmp_path / "again" / "img_align_celeba" / "000010.jpg", src / "img_align_celeba" / "000010.jpg")
    log = _quiet()
    celeba.prepare_celeba(src, tmp_path / "out", log=log)
    assert sum("already done" in line for line in log.lines) == 2 and any("retrying 1 item" in x for x in log.lines)
    assert read_manifest(tmp_path / "out")["splits"]["train"]["count"] == 16


def test_resume_after_interruption_skips_finished_shards(tmp_path, monkeypatch):
    src = make_celeba_fixture(tmp_path / "src", n=24)
    clean = tmp_path / "clean"
    celeba.prepare_celeba(src, clean, shard_size=5, log=_quiet())

    out = tmp_path / "out"
    decoded: list[str] = []
    real_process, real_write = celeba._process, shards_mod.ShardWriter.write

    def counting_process(source, name, variants, sizes):
        decoded.append(name)
        return real_process(source, name, variants, sizes)

    calls = {"n": 0}

    def dying_write(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            (self.out / "train-00002.images_zoom_64.npy.part").write_bytes(b"half a shard")
            raise KeyboardInterrupt  # Colab disconnect / Ctrl-C in the middle of shard 3
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(celeba, "_process", counting_process)
    monkeypatch.setattr(shards_mod.ShardWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        celeba.prepare_celeba(src, out, shard_size=5, log=_quiet())
    assert len(decoded) == 15
    with pytest.raises(DataError, match=r"stopped before finishing the 'train' split .*python -m data_prep.celeba"):
        load_prepared(out, "train")
    # a stray complete-looking shard file that the manifest does not list must not be trusted either
    (out / "train-00003.images_zoom_64.npy").write_bytes(b"garbage")

    monkeypatch.setattr(shards_mod.ShardWriter, "write", real_write)
    decoded.clear()
    log = _quiet()
    celeba.prepare_celeba(src, out, shard_size=5, log=log)
    assert len(decoded) == 24 - 10  # shards 1-2 (10 images) were kept
    assert sum("already done" in line for line in log.lines) == 2
    for split in ("train", "val", "test"):
        for variant in ("zoom", "wide"):
            a, b = load_prepared(out, split, variant=variant), load_prepared(clean, split, variant=variant)
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not list(out.glob("*.part"))

    decoded.clear()
    log = _quiet()
    celeba.prepare_celeba(src, out, shard_size=5, log=log)  # third run: nothing to do
    assert decoded == [] and sum("already done" in line for line in log.lines) == 6

    (out / "val-00000.images_wide_64.npy").write_bytes(b"x" * 100)  # damaged shard -> redone on resume
    celeba.prepare_celeba(src, out, shard_size=5, log=_quiet())
    assert decoded == ["000018.jpg", "000019.jpg", "000020.jpg", "000021.jpg"]
    assert torch.equal(load_prepared(out, "val", variant="wide").images,
                       load_prepared(clean, "val", variant="wide").images)


def test_killed_process_resumes_to_the_same_result(tmp_path):
    """SIGKILL (no cleanup at all) in the middle of a run, then resume: same shards as an uninterrupted run."""
    src = make_celeba_fixture(tmp_path / "src", n=300)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "data_prep.celeba", "--src", str(src), "--out", str(out), "--shard-size", "10",
           "--workers", "1", "--variants", "zoom", "--quiet"]
    deadline = time.monotonic() + 60
    with child(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):  # killed when the block ends
        while time.monotonic() < deadline:
            try:
                done = len(json.loads((out / "manifest.json").read_text())["splits"]["train"]["shards"])
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= 2:
                break
            time.sleep(0.02)
    manifest = read_manifest(out)
    assert not manifest["splits"]["train"]["complete"] and 2 <= len(manifest["splits"]["train"]["shards"]) < 21
    log = _quiet()
    celeba.prepare_celeba(src, out, shard_size=10, workers=1, variants=("zoom",), log=log)
    assert sum("already done" in line for line in log.lines) >= 2
    clean = tmp_path / "clean"
    celeba.prepare_celeba(src, clean, shard_size=10, variants=("zoom",), log=_quiet())
    for split in ("train", "val", "test"):
        a, b = load_prepared(out, split, verify=True), load_prepared(clean, split)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not list(out.glob("*.part"))


def test_disk_full_is_a_one_line_error_and_resumable(tmp_path, monkeypatch):
    src = make_celeba_fixture(tmp_path / "src", n=24)
    out = tmp_path / "out"
    real = shards_mod._save_npy
    calls = {"n": 0}

    def full_disk(path, array):
        calls["n"] += 1
        if calls["n"] == 5:  # the val shard's second array (train wrote 3: two image variants + attributes)
            path.with_name(path.name + ".part").write_bytes(b"partial")
            raise OSError(28, "No space left on device")
        real(path, array)

    monkeypatch.setattr(shards_mod, "_save_npy", full_disk)
    with pytest.raises(DataError, match=r"cannot write shard 1 of val .*No space left on device.*re-run"):
        celeba.prepare_celeba(src, out, log=_quiet())
    assert not list(out.glob("*.part"))
    monkeypatch.setattr(shards_mod, "_save_npy", real)
    log = _quiet()
    celeba.prepare_celeba(src, out, log=log)
    assert sum("already done" in line for line in log.lines) == 1 and prepared_splits(out)["test"] == 3


def test_limit_and_changed_settings(tmp_path):
    src = make_celeba_fixture(tmp_path / "src", n=24)
    out = tmp_path / "out"
    celeba.prepare_celeba(src, out, limit=5, variants=("zoom",), log=_quiet())
    assert prepared_splits(out) == {"train": 5, "val": 4, "test": 3}
    with pytest.raises(DataError, match="variant 'wide' not prepared"):
        load_prepared(out, "train", variant="wide")
    with pytest.raises(DataError, match="--sizes 32 64"):
        load_prepared(out, "train", size=32)
    log = _quiet()
    celeba.prepare_celeba(src, out, sizes=(32, 64), variants=("zoom",), log=log)  # new settings: rebuilt
    assert any("settings changed" in line for line in log.lines)
    assert load_prepared(out, "train", size=32).images.shape == (17, 3, 32, 32)
    assert len(load_prepared(out, "train", limit=3)) == 3
    celeba.prepare_celeba(src, out, sizes=(32,), variants=("wide",), log=_quiet())
    assert not list(out.glob("*zoom*")) and len(list(out.glob("*.images_wide_32.npy"))) == 3  # no orphans
    assert load_prepared(out, "val", size=32).meta["variant"] == "wide"


# ============================================================================================ shard reader
def test_reader_errors_name_the_prep_command(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; prepare it with: python -m data_prep\.celeba"):
        load_prepared(tmp_path / "nope")
    with pytest.raises(DataError, match=r"manifest\.json not found .*python -m data_prep"):
        load_prepared(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "cvaelib-sha')
    with pytest.raises(DataError, match=r"corrupt .*python -m data_prep\.celeba .*python -m data_prep\.coco"):
        load_prepared(tmp_path)


def test_write_shards_roundtrip_memmap_and_corruption(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 3, 8, 8), dtype=np.uint8)
    records = [{"file_name": f"{i}.jpg", "captions": [f"caption {i}"], "id": i} for i in range(7)]
    config = {"sizes": [8], "variants": ["center"], "default_variant": "center"}
    info = write_shards(tmp_path, "coco", "val", {"images_center_8": images}, records, config, shard_size=3)
    assert (info["count"], info["planned_shards"], info["complete"]) == (7, 3, True)
    manifest = read_manifest(tmp_path)
    entry = manifest["splits"]["val"]["shards"][1]["files"]["images_center_8"]
    assert entry["sha256"] == hashlib.sha256((tmp_path / entry["file"]).read_bytes()).hexdigest()
    data = load_prepared(tmp_path, "val", size=8)
    np.testing.assert_array_equal(data.images.numpy(), images)
    assert data.labels.tolist() == list(range(7)) and data.meta["captions"][4] == ["caption 4"]
    sub = data.take(torch.tensor([5, 1]))
    assert [sub.meta["captions"][i] for i in sub.labels.tolist()] == [["caption 5"], ["caption 1"]]

    one = tmp_path / "one"
    write_shards(one, "coco", "val", {"images_center_8": images}, records, config, shard_size=10)
    mapped = load_prepared(one, "val", size=8)
    mapped.images[0] = 0  # copy-on-write map: the tensor is writable, the file never changes
    np.testing.assert_array_equal(load_prepared(one, "val", size=8).images.numpy(), images)

    victim = tmp_path / entry["file"]
    victim.write_bytes(victim.read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated or corrupt .* re-run the prep"):
        load_prepared(tmp_path, "val", size=8)
    victim.write_bytes(b"\x00" * entry["bytes"])  # right size, wrong bytes: found by verify=True
    with pytest.raises(DataError):
        load_prepared(tmp_path, "val", size=8, verify=True)
    with pytest.raises(DataError, match="no 'train' split"):
        load_prepared(tmp_path, "train", size=8)


# ============================================================================================ COCO: filter
CAPTIONS = {
    1: ["A cowboy rides a horse in a rodeo arena."],   # horse yes, cowboy must not count as cow
    2: ["A man with a scowl stands near the bus."],    # scowl: no
    3: ["Cow."],                                         # the bare word with a full stop: yes
    4: ["Two cows graze near a barn"],                   # plural: yes
    5: ["A COW standing alone"],                         # case: yes
    6: ["A busy street with cars"],                      # 'tree' inside 'street': no
    7: ["Cowboys and cowgirls on parade"],               # no
    8: ["Ponies and calves in the meadow"],              # irregular plurals: yes
    9: ["Sheep on a hillside next to a city street"],    # yes, unless 'street' is excluded
}


def _images(caps: dict[int, list[str]]) -> list[dict]:
    return [{"id": k, "captions": v} for k, v in caps.items()]


def test_word_boundary_filter_on_tricky_words():
    got = {im["id"]: im["matched"] for im in coco.select_images(_images(CAPTIONS))}
    assert sorted(got) == [1, 3, 4, 5, 8, 9]
    assert got[1] == ["horse"] and got[3] == ["cow"] and got[4] == ["barn", "cows"]
    assert got[8] == ["calves", "meadow", "ponies"]
    only_cow = coco.select_images(_images(CAPTIONS), keywords=["cow"])
    assert [im["id"] for im in only_cow] == [3, 4, 5]
    assert [im["id"] for im in coco.select_images(_images(CAPTIONS), exclude=["street"])] == [1, 3, 4, 5, 8]
    assert [im["id"] for im in coco.select_images(_images(CAPTIONS), keywords=["hay bale", "city street"])] == [9]
    naive = [k for k, v in CAPTIONS.items() if any("cow" in c.lower() for c in v)]
    assert naive == [1, 2, 3, 4, 5, 7]  # what a substring filter would have taken (cowboy, scowl, cowgirls)


def test_filter_on_real_captions_min_matches_and_exclude(coco_sample):
    split, folder, images, _ = coco.load_captions(coco_sample / "annotations" / "captions_val2017_sample.json")
    assert (split, folder, len(images)) == ("val", "val2017", 100)
    assert all(len(im["captions"]) == 5 for im in images)
    chosen = coco.select_images(images)
    assert len(chosen) == 38
    pattern = coco.keyword_regex(coco.DEFAULT_KEYWORDS)
    assert all(any(pattern.search(c) for c in im["captions"]) for im in chosen)
    # the substring filter takes 'street' images for 'tree'; whole words do not
    substring = [im for im in images if any("tree" in c.lower() for c in im["captions"])]
    words = [im for im in images if any(re.search(r"\btrees?\b", c, re.I) for c in im["captions"])]
    assert len(substring) > len(words)
    assert {im["id"] for im in coco.select_images(images, ["tree"])} == {im["id"] for im in words}
    strict = coco.select_images(images, min_matches=3)
    assert 0 < len(strict) < len(chosen) and {im["id"] for im in strict} <= {im["id"] for im in chosen}
    no_sport = coco.select_images(images, exclude=["soccer", "baseball", "frisbee"])
    assert len(no_sport) < len(chosen)
    assert not any(re.search(r"\bsoccer\b", c, re.I) for im in no_sport for c in im["captions"])


def test_compare_filters_on_the_real_captions(coco_sample):
    """Lesson 07's demonstration: on the 500 real captions of the sample, the substring filter keeps 17 more than
    the whole-word one, and every extra is a keyword inside another word (mostly 'tree' in 'street')."""
    from data_prep.caption_filter import compare_filters, substring_hits

    _, _, images, _ = coco.load_captions(coco_sample / "annotations" / "captions_val2017_sample.json")
    captions = [c for im in images for c in im["captions"]]
    result = compare_filters(captions)
    pattern = coco.keyword_regex(coco.DEFAULT_KEYWORDS)
    assert result.captions == 500 and result.word_kept == sum(bool(pattern.search(c)) for c in captions) == 100
    assert result.substring_kept == sum(any(k in c.lower() for k in coco.DEFAULT_KEYWORDS) for c in captions) == 117
    assert len(result.substring_only) == 17 and result.word_only == []
    counts = result.by_keyword()
    assert list(counts)[0] == ("tree", "street") and counts[("tree", "street")] == 14
    assert counts[("field", "outfield")] == 1 and counts[("mountain", "mountainous")] == 1
    assert all(h.keyword in h.word and h.word != h.keyword and not pattern.search(h.caption)
               for h in result.substring_only)
    assert substring_hits("Two Cowboys and a scowl", ["cow"]) == [("cow", "cowboys"), ("cow", "scowl")]


def test_compare_filters_both_directions_and_multiword_keywords():
    from data_prep.caption_filter import compare_filters

    result = compare_filters(["Two cowboys ride past", "Calves in a meadow", "A hay bale.", "Cows!", "A scowl"],
                             ["cow", "calf", "hay bale"])
    assert (result.word_kept, result.substring_kept) == (3, 4)
    assert [(h.keyword, h.word) for h in result.substring_only] == [("cow", "cowboys"), ("cow", "scowl")]
    assert [(h.caption, h.word) for h in result.word_only] == [("Calves in a meadow", "calves")]
    assert compare_filters([], ["cow"]).captions == 0


def test_coco_prep_from_local_images(coco_sample, tmp_path, capsys):
    ann = coco_sample / "annotations" / "captions_val2017_sample.json"
    out = tmp_path / "coco"
    code = run(coco.main, ["--annotations", str(ann), "--images-dir", str(coco_sample), "--out", str(out),
                           "--shard-size", "16", "--quiet"])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(out)
    assert manifest["dataset"] == "coco" and manifest["splits"]["val"]["count"] == 38
    assert manifest["splits"]["val"]["planned_shards"] == 3 and set(manifest["splits"]) == {"val"}
    d64, d128 = load_prepared(out, "val", 64), load_prepared(out, "val", 128)
    assert d64.images.shape == (38, 3, 64, 64) and d128.images.shape == (38, 3, 128, 128)
    assert d64.labels.tolist() == list(range(38)) and all(len(c) == 5 for c in d64.meta["captions"])
    rec = d64.meta["records"][5]
    assert rec["coco_url"].endswith(rec["file_name"]) and rec["license"] in range(1, 9)
    # pixels: the centre square of the original, scaled (draft decoding changes them only a little)
    ref = center_square(Image.open(coco_sample / "val2017" / rec["file_name"]).convert("RGB"), 128)
    diff = np.abs(np.asarray(ref, dtype=float) - d128.images[5].numpy().transpose(1, 2, 0))
    assert diff.mean() < 4.0
    small = np.asarray(Image.fromarray(d128.images[5].numpy().transpose(1, 2, 0)).resize((64, 64), Image.BICUBIC),
                       dtype=float)
    assert np.abs(small - d64.images[5].numpy().transpose(1, 2, 0)).mean() < 4.0
    # a second run is a no-op
    log = _quiet()
    coco.prepare_coco([ann], out, coco_sample, shard_size=16, log=log)
    assert sum("already done" in line for line in log.lines) == 3


def test_coco_split_comes_from_the_file_and_bad_inputs(coco_sample, tmp_path):
    ann = coco_sample / "annotations" / "captions_val2017_sample.json"
    data = json.loads(ann.read_text())
    train_file = tmp_path / "captions_train2017.json"
    train_file.write_text(json.dumps(data))
    out = tmp_path / "out"
    coco.prepare_coco([train_file, ann], out, coco_sample / "val2017", limit=4, log=_quiet())
    assert prepared_splits(out) == {"train": 4, "val": 4}  # val is its own file, never a slice of train
    with pytest.raises(DataError, match="two annotation files for the val split"):
        coco.prepare_coco([ann, ann], out, coco_sample, log=_quiet())
    with pytest.raises(DataError, match="no captions"):
        coco.load_captions(coco_sample / "annotations" / "instances_val2017_sample.json")
    with pytest.raises(DataError, match="how-to-get"):
        coco.load_captions(tmp_path / "missing.json")
    with pytest.raises(DataError, match="--images-dir DIR"):
        coco.prepare_coco([ann], out, log=_quiet())


def test_coco_missing_and_corrupt_local_images_are_skipped(coco_sample, tmp_path):
    ann = coco_sample / "annotations" / "captions_val2017_sample.json"
    _, _, images, _ = coco.load_captions(ann)
    chosen = coco.select_images(images)[:6]
    local = tmp_path / "imgs"
    local.mkdir()
    for im in chosen[1:]:
        shutil.copy(coco_sample / "val2017" / im["file_name"], local / im["file_name"])
    victim = local / chosen[2]["file_name"]
    victim.write_bytes(victim.read_bytes()[:3000])  # truncated JPEG
    manifest = coco.prepare_coco([ann], tmp_path / "out", local, limit=6, log=_quiet())
    skipped = {s["name"]: s["reason"] for s in manifest["splits"]["val"]["shards"][0]["skipped"]}
    assert manifest["splits"]["val"]["count"] == 4
    assert "not found" in skipped[chosen[0]["file_name"]] and "truncated" in skipped[chosen[2]["file_name"]]


# ============================================================================================ downloads
class _FlakyServer:
    """A local HTTP server over coco_sample/val2017 whose first path segment picks a failure mode:

    ok, drop (first reply cut in half, Range honoured later), norange (drop, and Range never honoured),
    alwaysdrop (every reply cut in half), slow (first reply stalls past the client timeout), garbage (right length,
    random bytes), missing (404).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[tuple[str, str | None]] = []
        self.counts: dict[str, int] = {}
        self.healed = False  # True: "alwaysdrop" behaves like "ok" (the outage is over)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                outer.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        mode, _, rest = h.path.strip("/").partition("/")
        n = self.counts[h.path] = self.counts.get(h.path, 0) + 1
        rng = h.headers.get("Range")
        self.requests.append((h.path, rng))
        path = self.folder / Path(rest).name
        if mode == "missing" or not path.is_file():
            h.send_error(404)
            return
        data = path.read_bytes()
        if mode == "garbage":
            data = np.random.default_rng(n).integers(0, 256, len(data), dtype=np.uint8).tobytes()
        if mode == "slow" and n == 1:
            time.sleep(1.0)
        start = int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng and mode != "norange" else 0
        if start >= len(data) and start:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.end_headers()
            return
        body = data[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if (mode in ("drop", "norange") and n == 1) or (mode == "alwaysdrop" and not self.healed):
            body = body[: len(body) // 2]  # then the connection closes: a short body, no error on the client
        try:
            h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        h.close_connection = True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(coco_sample):
    srv = _FlakyServer(coco_sample / "val2017")
    yield srv
    srv.close()


NAME = "000000000139.jpg"


def _fast(url, dest, **kw):
    return coco.download(url, dest, timeout=kw.pop("timeout", 5.0), backoff=0.01, **kw)


def test_download_resumes_a_dropped_connection_with_range(server, coco_sample, tmp_path):
    original = (coco_sample / "val2017" / NAME).read_bytes()
    dest = _fast(f"{server.url}/drop/val2017/{NAME}", tmp_path / NAME)
    assert dest.read_bytes() == original and not (tmp_path / (NAME + ".part")).exists()
    assert server.requests == [(f"/drop/val2017/{NAME}", None),
                               (f"/drop/val2017/{NAME}", f"bytes={len(original) // 2}-")]


def test_download_restarts_when_range_is_ignored_and_retries_timeouts(server, coco_sample, tmp_path):
    original = (coco_sample / "val2017" / NAME).read_bytes()
    assert _fast(f"{server.url}/norange/val2017/{NAME}", tmp_path / "a.jpg").read_bytes() == original
    assert _fast(f"{server.url}/slow/val2017/{NAME}", tmp_path / "b.jpg", timeout=0.3).read_bytes() == original
    assert server.counts[f"/slow/val2017/{NAME}"] == 2


def test_whole_part_file_from_a_crash_is_finished_without_refetching(server, coco_sample, tmp_path):
    original = (coco_sample / "val2017" / NAME).read_bytes()
    (tmp_path / (NAME + ".part")).write_bytes(original)  # crashed after the last byte, before the rename
    assert _fast(f"{server.url}/ok/val2017/{NAME}", tmp_path / NAME).read_bytes() == original
    assert server.requests == [(f"/ok/val2017/{NAME}", f"bytes={len(original)}-")]  # answered 416: nothing left
    (tmp_path / "b.jpg.part").write_bytes(original + b"extra")  # longer than the file: discarded, fetched again
    assert _fast(f"{server.url}/ok/val2017/{NAME}", tmp_path / "b.jpg").read_bytes() == original


def test_failed_download_never_leaves_a_complete_looking_file(server, coco_sample, tmp_path):
    original = (coco_sample / "val2017" / NAME).read_bytes()
    dest = tmp_path / NAME
    with pytest.raises(coco.DownloadError, match="gave up after 3 attempts .*dropped"):
        _fast(f"{server.url}/alwaysdrop/val2017/{NAME}", dest, retries=2)
    part = tmp_path / (NAME + ".part")
    have = part.stat().st_size
    assert not dest.exists() and 0 < have < len(original)
    # the next run resumes the .part against a healthy server and completes it
    assert _fast(f"{server.url}/ok/val2017/{NAME}", dest).read_bytes() == original
    assert server.requests[-1] == (f"/ok/val2017/{NAME}", f"bytes={have}-") and not part.exists()
    with pytest.raises(coco.DownloadError, match="not a valid image"):
        _fast(f"{server.url}/garbage/val2017/{NAME}", tmp_path / "g.jpg", retries=1)
    assert not (tmp_path / "g.jpg").exists()
    n_before = len(server.requests)
    with pytest.raises(coco.DownloadError, match="HTTP 404"):
        _fast(f"{server.url}/missing/val2017/{NAME}", tmp_path / "m.jpg")
    assert len(server.requests) == n_before + 1 and not (tmp_path / "m.jpg").exists()  # no retry on 404
    with pytest.raises(coco.DownloadError, match="not an http"):
        coco.download(None, tmp_path / "n.jpg")  # a record without coco_url: reported, not a crash


def test_coco_prep_downloads_through_a_flaky_mirror(server, coco_sample, tmp_path):
    ann = coco_sample / "annotations" / "captions_val2017_sample.json"
    data = json.loads(ann.read_text())
    _, _, images, _ = coco.load_captions(ann)
    chosen = [im["id"] for im in coco.select_images(images)[:6]]
    # every selected image drops its first connection; one is gone from the server (404, permanent); one keeps
    # failing until the server "heals" (a network outage: the next run must try it again)
    modes = {chosen[4]: "missing", chosen[1]: "alwaysdrop"}
    for im in data["images"]:
        im["coco_url"] = im["coco_url"].replace(coco.COCO_HOST, f"{coco.COCO_HOST}{modes.get(im['id'], 'drop')}/")
    ann2 = tmp_path / "captions_val2017.json"
    ann2.write_text(json.dumps(data))
    out = tmp_path / "out"
    args = ["--annotations", str(ann2), "--download", "--out", str(out), "--limit", "6", "--workers", "4",
            "--mirror", f"{server.url}/", "--quiet", "--retries", "2", "--backoff", "0.01"]
    assert run(coco.main, args) == 0
    val = read_manifest(out)["splits"]["val"]
    skipped = {s["id"]: s for s in val["shards"][0]["skipped"]}
    assert val["count"] == 4 and val["skipped"] == 2
    assert "HTTP 404" in skipped[chosen[4]]["reason"] and not skipped[chosen[4]]["retry"]
    assert "dropped" in skipped[chosen[1]]["reason"] and skipped[chosen[1]]["retry"]
    assert len(list((out / "raw" / "val2017").glob("*.jpg.part"))) == 1  # the outage left a partial file

    server.healed = True
    n_requests = len(server.requests)
    assert run(coco.main, args) == 0  # the same command again
    name = {im["id"]: im["file_name"] for im in images}
    new = dict(server.requests[n_requests:])
    # the shard with a retryable failure is redone: the failed image resumes its .part (Range), the 404 is asked
    # once more, the 4 cached images are not fetched again
    assert set(new) == {f"/alwaysdrop/val2017/{name[chosen[1]]}", f"/missing/val2017/{name[chosen[4]]}"}
    assert new[f"/alwaysdrop/val2017/{name[chosen[1]]}"].startswith("bytes=")
    val = read_manifest(out)["splits"]["val"]
    assert val["count"] == 5 and val["skipped"] == 1
    cached = sorted(p.name for p in (out / "raw" / "val2017").iterdir())
    assert len(cached) == 5 and not any(n.endswith(".part") for n in cached)
    for name in cached:
        assert (out / "raw" / "val2017" / name).read_bytes() == (coco_sample / "val2017" / name).read_bytes()
    got = load_prepared(out, "val", 64)
    coco.prepare_coco([ann], tmp_path / "ref", coco_sample, limit=6, log=_quiet())  # same images, local
    ref = load_prepared(tmp_path / "ref", "val", 64)
    assert torch.equal(got.images, ref.images[[0, 1, 2, 3, 5]])
    assert got.meta["captions"] == [ref.meta["captions"][i] for i in (0, 1, 2, 3, 5)]
    n_requests = len(server.requests)
    assert run(coco.main, args) == 0 and len(server.requests) == n_requests  # third run: nothing to fetch
