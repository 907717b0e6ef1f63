"""The one in-memory description of a labelled image collection that every reader returns.

A :class:`LabeledImages` holds labels and class names always, and the pixels in one of three
ways: a uint8 array (IDX, CIFAR, ``.npz``, scikit-learn), file paths decoded on the fly
(image folders: nothing but the path list grows with the number of images), or TFRecord files
read record by record. :meth:`LabeledImages.to_tf_dataset` turns any of them into a
``tf.data.Dataset`` of ``(uint8 image HxWxC, int32 label)`` that the pipeline builds on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from foveal.errors import DataError


@dataclass(frozen=True)
class TFRecordFiles:
    """TFRecord files of ``tf.train.Example`` with an encoded image and an integer label.

    Attributes:
        files: the record files, read in this order.
        record_indices: which records (0-based over all files in order) belong to this
            collection; ``None`` means all of them.
        image_key, label_key: the feature names.
    """

    files: tuple[str, ...]
    record_indices: np.ndarray | None = None
    image_key: str = "image"
    label_key: str = "label"


@dataclass(frozen=True)
class LabeledImages:
    """Labelled images, stored as arrays, as paths, or as TFRecord files.

    Exactly one of ``images``, ``paths`` and ``tfrecord`` is set.

    Attributes:
        class_names: class index -> name.
        labels: int32 array of shape (N,).
        images: uint8 array (N, H, W, C), or None.
        paths: array of file paths (N,), or None.
        tfrecord: TFRecord storage, or None.
        origin: where the data came from, for messages and reports.
        info: free-form facts a reader wants to pass on (e.g. skipped files).
    """

    class_names: list[str]
    labels: np.ndarray
    images: np.ndarray | None = None
    paths: np.ndarray | None = None
    tfrecord: TFRecordFiles | None = None
    origin: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        stores = [s is not None for s in (self.images, self.paths, self.tfrecord)]
        if sum(stores) != 1:
            raise ValueError("exactly one of images, paths and tfrecord must be given")
        n = len(self.labels)
        if self.images is not None and len(self.images) != n:
            raise DataError(f"{self.origin}: {len(self.images)} images but {n} labels")
        if self.paths is not None and len(self.paths) != n:
            raise DataError(f"{self.origin}: {len(self.paths)} files but {n} labels")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise DataError(
                f"{self.origin}: labels span {self.labels.min()}..{self.labels.max()} but there are "
                f"{len(self.class_names)} class names"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def streams_from_disk(self) -> bool:
        return self.images is None

    def counts(self) -> dict[str, int]:
        """Number of examples per class name, in class order."""
        c = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c[i]) for i, name in enumerate(self.class_names)}

    def subset(self, indices: np.ndarray, origin: str | None = None) -> "LabeledImages":
        """The examples at ``indices``, stored the same way (in that order, except for TFRecord
        storage, which keeps file order)."""
        indices = np.asarray(indices, dtype=np.int64)
        kw: dict[str, Any] = {"labels": self.labels[indices], "origin": origin or self.origin}
        if self.images is not None:
            kw["images"] = self.images[indices]
        elif self.paths is not None:
            kw["paths"] = self.paths[indices]
        else:
            assert self.tfrecord is not None
            # Records stream in file order, so a subset must list them in that order too.
            indices = np.sort(indices)
            kw["labels"] = self.labels[indices]
            base = self.tfrecord.record_indices
            chosen = indices if base is None else base[indices]
            kw["tfrecord"] = replace(self.tfrecord, record_indices=chosen)
        return replace(self, **kw)

    def to_tf_dataset(self, channels: int, skip_invalid: bool = False, shuffle_seed: Any = None,
                      reshuffle: bool = True):
        """An unbatched ``tf.data.Dataset`` of ``(uint8 HxWxC image, int32 label)``.

        Arrays keep their size; files are decoded with ``channels`` channels (gray, RGB or
        RGBA converted as needed) and keep their own size, so a resize must follow.
        ``shuffle_seed`` shuffles the whole file list before decoding (files only), in a new
        order each time the dataset is iterated unless ``reshuffle`` is False.
        """
        from foveal.data import decode  # local: keeps TensorFlow out of plain imports

        if self.images is not None:
            return decode.dataset_from_arrays(self.images, self.labels, channels)
        if self.paths is not None:
            return decode.dataset_from_paths(self.paths, self.labels, channels, skip_invalid, shuffle_seed,
                                             info=self.info, reshuffle=reshuffle)
        assert self.tfrecord is not None
        return decode.dataset_from_tfrecord(self.tfrecord, self.labels, channels, skip_invalid, info=self.info)


@dataclass
class Splits:
    """Train / validation / test collections; validation and test may be absent."""

    train: LabeledImages
    val: LabeledImages | None = None
    test: LabeledImages | None = None

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names
