"""Data registry on real MNIST / Fashion-MNIST / digits: shapes, labels, splits, batches and clear errors."""

from __future__ import annotations

import gzip
import shutil

import pytest
import torch

from cvaelib.data import TensorBatches, class_names, load_dataset, subset, train_val_split
from cvaelib.errors import DataError


@pytest.mark.parametrize("name,n_train,n_test", [("mnist", 60000, 10000), ("fashion-mnist", 60000, 10000)])
def test_idx_datasets_load_whole_split_as_uint8(data_root, name, n_train, n_test):
    train = load_dataset(name, data_root, "train")
    test = load_dataset(name, data_root, "test")
    assert train.images.shape == (n_train, 1, 28, 28) and train.images.dtype == torch.uint8
    assert len(test) == n_test and test.labels.dtype == torch.int64
    assert sorted(train.labels.unique().tolist()) == list(range(10))
    # real images: mostly black background, bright strokes
    assert 20 < train.images.float().mean() < 90 and train.images.max() == 255
    assert train.class_names == class_names(name)


def test_digits_is_bundled_and_split(tmp_path):
    train, test = load_dataset("digits", tmp_path / "nothing"), load_dataset("digits", split="test")
    assert train.images.shape[1:] == (1, 8, 8) and len(train) + len(test) == 1797
    assert train.images.max() == 255


def test_split_is_deterministic_and_disjoint():
    data = load_dataset("digits")
    a_train, a_val = train_val_split(data, 0.2, seed=3)
    b_train, b_val = train_val_split(data, 0.2, seed=3)
    assert torch.equal(a_val.images, b_val.images)
    assert len(a_train) + len(a_val) == len(data)
    _, c_val = train_val_split(data, 0.2, seed=4)
    assert not torch.equal(a_val.labels, c_val.labels)


def test_tensor_batches_cover_every_image_once():
    data = subset(load_dataset("digits"), 300)
    batches = TensorBatches(data, batch_size=64, shuffle=True, seed=0)
    seen = torch.cat([x.flatten(1) for x, _ in batches])
    assert seen.shape == (300, 64) and 0.0 <= seen.min() and seen.max() <= 1.0
    assert torch.allclose(seen.sum(0), data.float_images().flatten(1).sum(0), atol=1e-3)
    # same seed, same order
    again = torch.cat([y for _, y in TensorBatches(data, 64, seed=0)])
    first = torch.cat([y for _, y in TensorBatches(data, 64, seed=0)])
    assert torch.equal(again, first)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="choose one of: digits, mnist, fashion-mnist"):
        load_dataset("cifar10")


def test_missing_root_names_layout_and_fetch_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path / "nope")
    msg = str(err.value)
    assert "MNIST/raw/train-images-idx3-ubyte.gz" in msg and "python -m cvaelib fetch mnist" in msg
    assert "\n" not in msg


def test_one_folder_too_deep_is_recognised(tmp_path, data_root):
    deep = tmp_path / "MNIST" / "extra" / "raw"
    deep.mkdir(parents=True)
    shutil.copy(data_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz", deep)
    with pytest.raises(DataError, match="one folder too deep"):
        load_dataset("mnist", tmp_path, "test")


def test_corrupt_gzip_reports_checksum(tmp_path, data_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_root / "MNIST" / "raw" / f, raw / f)
    blob = (raw / "t10k-images-idx3-ubyte.gz").read_bytes()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])  # truncated download
    with pytest.raises(DataError, match="corrupt .*md5.*re-fetch"):
        load_dataset("mnist", tmp_path, "test")


def test_uncompressed_files_are_accepted(tmp_path, data_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f).write_bytes(gzip.decompress((data_root / "MNIST" / "raw" / f"{f}.gz").read_bytes()))
    assert len(load_dataset("mnist", tmp_path, "test")) == 10000


def test_md5_sums_are_torchvisions():
    """The kit writes torchvision's md5 sums out (importing torchvision costs a second and a half per process)."""
    import torchvision.datasets as tvd

    from cvaelib.data.datasets import _MD5

    for folder, sums in _MD5.items():
        assert sums == dict(getattr(tvd, folder).resources)
