"""Data: named datasets held in memory, seeded splits and fast tensor batches."""

from .batches import TensorBatches
from .datasets import (DATASETS, FASHION_CLASSES, MNIST_CLASSES, ImageData, check_dataset_name, class_names,
                       default_data_root, fetch, load_dataset, subset, train_val_split)
from .shards import load_prepared, prepared_splits, read_manifest, write_shards

__all__ = ["DATASETS", "FASHION_CLASSES", "MNIST_CLASSES", "ImageData", "TensorBatches", "check_dataset_name",
           "class_names", "default_data_root", "fetch", "load_dataset", "load_prepared", "prepared_splits",
           "read_manifest", "subset", "train_val_split", "write_shards"]
