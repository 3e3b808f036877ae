"""vae.correction: difference maps, corrected regions, circles, synthetic flaws, one-image correction
and safe upload loading, on small hand-made arrays (plus one check on the shipped 64-dim VAE, or on
the checkpoint named by $CORRECTION_CHECKPOINT)."""
import io
import math
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vae import ConvAE, ConvVAE, load_checkpoint, prepare_array
from vae.correction import (ADDED_COLOUR, CIRCLE_COLOUR, FLAW_KINDS, MIN_REGION_AREA, REMOVED_COLOUR, add_flaw,
                            circle_regions, correct, corrected_regions, describe_regions, difference_map,
                            load_uploaded_image, render_difference, to_rgb, upscale, verdict)
from vae.data import to_float
from vae.errors import reconstruction_errors

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


def bar_digit() -> np.ndarray:
    """A hand-made '1': a 2-px vertical stroke in a 28×28 black image."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[6:22, 13:15] = 1.0
    return image


# --- difference map ------------------------------------------------------------------------------

def test_difference_is_reconstruction_minus_input():
    image = np.array([[0.0, 1.0, 0.5]], dtype=np.float32)
    recon = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(difference_map(image, recon), [[1.0, -1.0, 0.0]])  # added, removed, same
    with pytest.raises(ValueError, match="shape"):
        difference_map(np.zeros((28, 28)), np.zeros((27, 28)))


def test_rendered_difference_uses_one_fixed_scale_and_two_colours():
    diff = np.array([[0.0, 1.0, -1.0, 0.5, 3.0, -3.0]], dtype=np.float32)
    rgb = render_difference(diff)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 6, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == list(ADDED_COLOUR)
    assert rgb[0, 2].tolist() == list(REMOVED_COLOUR)
    assert rgb[0, 3].tolist() == [round(c / 2) for c in ADDED_COLOUR]
    assert rgb[0, 4].tolist() == list(ADDED_COLOUR) and rgb[0, 5].tolist() == list(REMOVED_COLOUR)  # clipped
    # Fixed scale: a pixel's colour does not depend on how large the other changes are.
    alone = render_difference(np.array([[0.5, 0.0]]))
    with_big = render_difference(np.array([[0.5, 1.0]]))
    assert alone[0, 0].tolist() == with_big[0, 0].tolist()


def test_upscale_makes_crisp_blocks_and_to_rgb_makes_gray_uint8():
    image = np.array([[0.0, 1.0]], dtype=np.float32)
    big = upscale(to_rgb(image), 3)
    assert big.shape == (3, 6, 3) and big.dtype == np.uint8
    assert (big[:, :3] == 0).all() and (big[:, 3:] == 255).all()


# --- corrected regions ---------------------------------------------------------------------------

def test_regions_are_connected_spots_with_sign_size_and_peak():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2:5, 2:5] = 0.6  # 3×3 of added ink
    diff[3, 3] = 0.9
    diff[20, 10:12] = -0.5  # 2 px of removed ink
    diff[10, 20] = 0.8  # a lone speck: noise, not a correction
    diff[15, 15], diff[16, 16] = 0.7, -0.7  # diagonal neighbours: one spot, ink moved
    diff[25, 25:27] = 0.3  # exactly at the level: not above it
    regions = corrected_regions(diff, level=0.3, min_area=2)
    assert [r.peak for r in regions] == pytest.approx([0.9, 0.7, 0.5])  # largest change first
    added, moved, removed = regions
    assert (added.sign, added.area, added.bbox, added.centre) == ("added", 9, (2, 2, 5, 5), (3.0, 3.0))
    assert (moved.sign, moved.area, moved.bbox) == ("mixed", 2, (15, 15, 17, 17))
    assert (removed.sign, removed.area, removed.bbox, removed.centre) == ("removed", 2, (20, 10, 21, 12), (20.0, 10.5))
    assert len(corrected_regions(diff, level=0.3, min_area=1)) == 4  # the speck, when asked for
    assert MIN_REGION_AREA > 2 and corrected_regions(diff, level=0.3) == [added]  # by default only real spots
    assert corrected_regions(np.zeros((28, 28)), 0.3) == []
    with pytest.raises(ValueError, match="2-D"):
        corrected_regions(np.zeros((1, 28, 28)), 0.3)


def test_region_circle_covers_every_pixel_of_an_odd_shape():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[5, 5:15] = 1.0  # an L: long arm
    diff[5:12, 5] = 1.0  # short arm
    (region,) = corrected_regions(diff, 0.5)
    rows, cols = np.nonzero(diff)
    for dr in (-0.5, 0.5):  # every corner of every pixel lies inside the circle
        for dc in (-0.5, 0.5):
            distance = np.hypot(rows + dr - region.centre[0], cols + dc - region.centre[1])
            assert (distance <= region.radius + 1e-6).all()
    assert region.radius < math.hypot(7, 10)  # and it is not absurdly large


def test_describe_regions_counts_by_sign():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2:4, 2:4], diff[10:12, 10:12], diff[20:22, 20:22] = 0.9, 0.9, -0.9
    assert describe_regions(corrected_regions(diff, 0.3)) == "3 corrected spots: 2 with ink added, 1 with ink removed"
    assert describe_regions([]) == "no corrected spot"


def test_circles_are_drawn_around_regions_on_an_enlarged_copy():
    image = bar_digit()
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[10:13, 20:23] = -0.8
    regions = corrected_regions(diff, 0.3)
    circled = circle_regions(image, regions, scale=10)
    assert circled.shape == (280, 280, 3) and circled.dtype == np.uint8
    red = (circled == CIRCLE_COLOUR).all(axis=2)
    # Red on the circle (left and right of the spot, at its radius), none on the spot itself.
    centre_y, centre_x = (11 + 0.5) * 10, (21 + 0.5) * 10
    radius_px = (regions[0].radius + 0.5) * 10
    assert red[int(centre_y), int(centre_x + radius_px) - 1: int(centre_x + radius_px) + 2].any()
    assert red[int(centre_y), int(centre_x - radius_px) - 1: int(centre_x - radius_px) + 2].any()
    assert not red[100:130, 200:230].any()
    # Without regions it is just the enlarged image.
    np.testing.assert_array_equal(circle_regions(image, [], scale=10), upscale(to_rgb(image), 10))


# --- synthetic flaws -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", FLAW_KINDS)
def test_flaws_are_deterministic_in_range_and_leave_the_input_alone(kind):
    image = bar_digit()
    original = image.copy()
    flawed = add_flaw(image, kind, seed=3)
    np.testing.assert_array_equal(flawed, add_flaw(image, kind, seed=3))
    np.testing.assert_array_equal(image, original)
    assert flawed.shape == (28, 28) and flawed.min() >= 0.0 and flawed.max() <= 1.0
    if kind == "none":
        np.testing.assert_array_equal(flawed, image)
    else:
        assert not np.array_equal(flawed, image)
        assert not np.array_equal(add_flaw(image, kind, seed=4), flawed)  # another seed, another flaw
    # A generator works as the seed too.
    np.testing.assert_array_equal(add_flaw(image, kind, np.random.default_rng(3)), flawed)


def test_each_flaw_changes_ink_the_way_its_name_says():
    image = bar_digit()
    for seed in range(5):
        for kind in ("scratch", "blob"):  # only add ink
            flawed = add_flaw(image, kind, seed)
            assert (flawed >= image).all() and (flawed - image).sum() >= 4
        erased = add_flaw(image, "erase", seed)  # only removes ink, from the stroke
        assert (erased <= image).all() and (image - erased).sum() >= 4
        half_ink = np.zeros((28, 28), dtype=np.float32)
        half_ink[:, :14] = 1.0
        noisy = add_flaw(half_ink, "noise", seed)  # salt on the background and pepper on the ink
        assert ((noisy == 1.0) & (half_ink == 0.0)).any() and ((noisy == 0.0) & (half_ink == 1.0)).any()
    with pytest.raises(ValueError, match="unknown flaw"):
        add_flaw(image, "smudge", 0)


# --- one image through a model -------------------------------------------------------------------

@pytest.mark.parametrize("model_class", [ConvAE, ConvVAE])
def test_correct_returns_the_reconstruction_its_difference_and_the_histogram_score(model_class):
    torch.manual_seed(0)
    model = model_class(4).eval()
    image = bar_digit()
    result = correct(model, image)
    x = torch.from_numpy(image).view(1, 1, 28, 28)
    with torch.no_grad():
        expected_recon = model.reconstruct(x)[0, 0].numpy()
    np.testing.assert_allclose(result.reconstruction, expected_recon, atol=1e-6)
    np.testing.assert_allclose(result.diff, expected_recon - image, atol=1e-6)
    assert result.score == pytest.approx(float(reconstruction_errors(model, x)[0]))
    assert result.score == pytest.approx(float(((expected_recon - image) ** 2).sum()), rel=1e-5)
    with pytest.raises(ValueError, match="28×28"):
        correct(model, np.zeros((1, 28, 28), dtype=np.float32))


def test_verdict_is_anomaly_only_above_the_threshold():
    assert verdict(10.1, 10.0) == "anomaly"
    assert verdict(10.0, 10.0) == "normal"
    assert verdict(3.0, 10.0) == "normal"


def test_shipped_64_dim_vae_takes_out_a_stray_stroke_and_scores_it_higher(mnist):
    """Report Fig. 6: the 64-dim VAE drops ink that is no part of the digit, and the difference
    map finds the spot."""
    path = Path(os.environ.get("CORRECTION_CHECKPOINT", CHECKPOINTS / "vae-z64.pt"))
    if not path.exists():
        pytest.skip(f"checkpoint {path} not present")
    model, _ = load_checkpoint(path)
    digits = to_float(mnist.test_images[:5])[:, 0].numpy()
    for seed, clean in enumerate(digits):
        flawed = add_flaw(clean, "scratch", seed)
        scratch = flawed > clean + 0.5
        result = correct(model, flawed)
        assert result.score > correct(model, clean).score
        assert result.diff[scratch].mean() < -0.3  # much of the stray ink is gone from the reconstruction
        regions = [r for r in corrected_regions(result.diff) if r.sign != "added"]
        assert any(scratch[r.bbox[0]:r.bbox[2], r.bbox[1]:r.bbox[3]].any() for r in regions)


# --- uploaded files ------------------------------------------------------------------------------

def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height: what a decompression bomb looks like before decoding."""
    data = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    ihdr = 12  # 8-byte signature, 4-byte chunk length, then b"IHDR" + 13 bytes of data, then the CRC
    data[ihdr + 4:ihdr + 8] = width.to_bytes(4, "big")
    data[ihdr + 8:ihdr + 12] = height.to_bytes(4, "big")
    data[ihdr + 17:ihdr + 21] = zlib.crc32(bytes(data[ihdr:ihdr + 17])).to_bytes(4, "big")
    return bytes(data)


def drawn_seven(fmt: str) -> bytes:
    image = Image.new("RGB", (120, 160), "white")
    ImageDraw.Draw(image).line([(20, 20), (100, 20), (50, 140)], fill="black", width=12)
    return encoded(image, fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_png_or_jpeg_loads_and_prepares_into_a_digit(fmt):
    image = load_uploaded_image(drawn_seven(fmt))
    assert image.size == (120, 160)
    digit = prepare_array(image)
    assert digit.shape == (28, 28) and digit.max() > 0.9


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"%PDF-1.4 this is not an image at all", "not an image"),
    (drawn_seven("PNG")[:300], "damaged or incomplete"),  # truncated upload
    (encoded(Image.new("L", (10, 10)), "GIF"), "GIF image; upload a PNG or JPEG"),
    (png_claiming_size(7_000, 7_000), "too large"),  # 49 Mpx: over our limit, under Pillow's
    (png_claiming_size(10_000, 10_000), "too large"),  # 100 Mpx: Pillow's bomb warning, made an error
    (png_claiming_size(30_000, 30_000), "too large"),  # 900 Mpx: Pillow's bomb error
])
def test_bad_uploads_raise_one_clear_value_error(data, message):
    with pytest.raises(ValueError, match=message):
        load_uploaded_image(data)


def test_the_pixel_limit_is_a_parameter():
    data = encoded(Image.new("L", (100, 100), 255), "PNG")
    assert load_uploaded_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ValueError, match="too large"):
        load_uploaded_image(data, max_pixels=9_999)
