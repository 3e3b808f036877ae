"""prepare_array / prepare_image: any drawn or uploaded digit → MNIST's own format (20 px box, centre
of mass in the middle), whatever its polarity, colour mode, alpha, dtype or container."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vae.preprocess import prepare_array, prepare_image

INK = 0.1  # the pixels that count as ink when measuring the output's bounding box


def _digit(h: int = 300, w: int = 200) -> np.ndarray:
    """A thick '9'-like stroke (ring + tail) drawn large and off-centre, near the top-right corner.
    uint8, light ink (255) on black (0); its ink spans 179 × 69 px."""
    rows, cols = np.mgrid[:h, :w]
    r = ((rows - 80) / 60.0) ** 2 + ((cols - 150) / 35.0) ** 2
    img = np.zeros((h, w), dtype=np.uint8)
    img[(r < 1.0) & (r > 0.55)] = 255
    img[100:200, 175:185] = 255
    return img


def _bbox(a: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(a > INK)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def _centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(a.shape)
    return float((rows * a).sum() / a.sum()), float((cols * a).sum() / a.sum())


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return prepare_array(_digit())


def _rgba(ink_rgb: int, background_rgb: int) -> np.ndarray:
    """A canvas drawing: strokes of colour ink_rgb, fully opaque, on a fully transparent background."""
    d = _digit()
    rgba = np.zeros((*d.shape, 4), dtype=np.uint8)
    rgba[..., :3] = background_rgb
    rgba[d > 0, :3] = ink_rgb
    rgba[..., 3] = d
    return rgba


def test_large_off_centre_digit_is_scaled_to_20px_and_centred(reference):
    src_h, src_w = _bbox(_digit().astype(np.float32) / 255)
    assert (src_h, src_w) == (179, 69)
    out = reference
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.9
    h, w = _bbox(out)
    assert abs(max(h, w) - 20) <= 1, (h, w)
    assert abs(w / h - src_w / src_h) < 0.1  # aspect ratio kept
    com_r, com_c = _centre_of_mass(out)
    assert abs(com_r - 13.5) <= 1.0 and abs(com_c - 13.5) <= 1.0, (com_r, com_c)


def test_small_digit_is_scaled_up_to_20px():
    small = np.zeros((28, 28), dtype=np.uint8)
    small[2:8, 20:23] = 255  # a 6 × 3 bar in a corner
    h, w = _bbox(prepare_array(small))
    assert abs(max(h, w) - 20) <= 1, (h, w)


def test_dark_on_light_gives_the_same_result(reference):
    inverted = 255 - _digit()
    np.testing.assert_allclose(prepare_array(inverted), reference, atol=1e-5)


def test_float_input_in_0_1_gives_the_same_result(reference):
    np.testing.assert_allclose(prepare_array(_digit().astype(np.float32) / 255.0), reference, atol=1e-5)
    np.testing.assert_allclose(prepare_array(_digit().astype(np.float64) / 255.0), reference, atol=1e-5)


@pytest.mark.parametrize("dark_on_light", [False, True])
def test_rgb_input(reference, dark_on_light):
    d = 255 - _digit() if dark_on_light else _digit()
    rgb = np.repeat(d[:, :, None], 3, axis=2)
    np.testing.assert_allclose(prepare_array(rgb), reference, atol=1e-4)
    coloured = np.zeros((*d.shape, 3), dtype=np.uint8)  # blue paper, white ink: the gray levels differ
    coloured[...] = (30, 60, 200)
    coloured[_digit() > 0] = 255
    out = prepare_array(coloured)
    assert abs(max(_bbox(out)) - 20) <= 1
    np.testing.assert_allclose(out, reference, atol=0.02)


@pytest.mark.parametrize("background_rgb", [0, 255], ids=["bg-black", "bg-white"])
@pytest.mark.parametrize("ink_rgb", [0, 255], ids=["black-strokes", "white-strokes"])
def test_rgba_transparent_background(reference, ink_rgb, background_rgb):
    """A canvas export: only alpha says where the ink is; the transparent pixels' colour is arbitrary."""
    out = prepare_array(_rgba(ink_rgb, background_rgb))
    np.testing.assert_allclose(out, reference, atol=1e-4)


def test_rgba_opaque_white_paper_black_ink(reference):
    d = _digit()
    rgba = np.full((*d.shape, 4), 255, dtype=np.uint8)
    rgba[d > 0, :3] = 0
    np.testing.assert_allclose(prepare_array(rgba), reference, atol=1e-4)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "1"])
def test_pil_image_input(reference, mode):
    d = _digit()
    if mode == "RGBA":
        img = Image.fromarray(_rgba(0, 0), mode="RGBA")
    else:
        img = Image.fromarray(255 - d, mode="L").convert(mode)  # dark on light, like a scan
    out = prepare_image(img)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1, 28, 28) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0, 0].numpy(), reference, atol=1e-4)


def test_prepare_image_shape_dtype_range():
    out = prepare_image(_digit())
    assert out.shape == (1, 1, 28, 28)
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(out.sum()) > 10  # there is a digit in it


@pytest.mark.parametrize("blank", [
    np.zeros((280, 280), dtype=np.uint8),
    np.full((280, 280), 255, dtype=np.uint8),
    np.full((280, 280, 3), 255, dtype=np.uint8),
    np.zeros((280, 280, 4), dtype=np.uint8),  # fully transparent canvas
    np.full((100, 100), 0.5, dtype=np.float32),
], ids=["black", "white", "white-rgb", "transparent", "gray"])
def test_blank_image_raises_a_clear_value_error(blank):
    with pytest.raises(ValueError, match="blank"):
        prepare_array(blank)
    with pytest.raises(ValueError, match="blank"):
        prepare_image(Image.fromarray(blank) if blank.dtype == np.uint8 else blank)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros((4, 4, 2)), np.array([["a"]])], ids=["empty", "2ch", "str"])
def test_non_images_raise_value_error(bad):
    with pytest.raises(ValueError):
        prepare_array(bad)


def test_mnist_digits_come_back_almost_unchanged(mnist):
    """MNIST is already in this format: running its digits through prepare_array changes ~nothing."""
    images = mnist.test_images[:200, 0].numpy().astype(np.float32) / 255.0
    prepared = np.stack([prepare_array(img) for img in images])
    diff = np.abs(prepared - images).mean(axis=(1, 2))
    # For scale: shifting a digit by one pixel changes it by ~0.065 on average.
    one_px = np.abs(np.roll(images, 1, axis=2) - images).mean()
    assert one_px > 0.04
    assert diff.mean() < 0.005, diff.mean()
    assert np.median(diff) < 1e-4
    assert (diff < 1e-4).mean() > 0.5  # most come back exactly


def test_without_centring_the_ink_stays_where_it_was_drawn():
    """The report's pre-alignment switched off: scaled like MNIST, but placed where it sat in the picture."""
    picture = np.zeros((280, 280), dtype=np.float32)
    picture[20:120, 30:60] = 1.0  # a bar in the top-left quarter
    centred, as_drawn = prepare_array(picture), prepare_array(picture, centre=False)
    assert centred.shape == as_drawn.shape == (28, 28)
    rows, cols = np.nonzero(as_drawn > 0.5)
    assert abs(rows.mean() - 7.0) <= 1 and abs(cols.mean() - 4.5) <= 1  # the bar's centre: (70, 45) / 10
    rows, cols = np.nonzero(centred > 0.5)
    assert abs(rows.mean() - 14) <= 1 and abs(cols.mean() - 14) <= 1
    middle = np.zeros((280, 280), dtype=np.float32)
    middle[90:190, 125:155] = 1.0  # drawn in the middle: both ways agree within a pixel
    difference = np.argwhere(prepare_array(middle) > 0.5).mean(0) - np.argwhere(prepare_array(middle, centre=False) > 0.5).mean(0)
    assert np.abs(difference).max() <= 1
    corner = np.zeros((280, 280), dtype=np.float32)
    corner[0:20, 250:280] = 1.0  # at the very edge: cut off, never an error
    assert prepare_array(corner, centre=False).shape == (28, 28)
