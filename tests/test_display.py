"""vae.display: difference maps and digits as RGB, enlarged, corrected spots circled and counted."""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from studio.display import (
    ADDED_COLOUR,
    CIRCLE_COLOUR,
    REMOVED_COLOUR,
    circle_spots,
    describe_spots,
    png_bytes,
    render_difference,
    result_sheet,
    thumbnail_url,
    to_rgb,
    upscale,
)
from vae.correction import spots_in

from digits import bar_digit


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


def test_describe_spots_counts_by_sign():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2:4, 2:4], diff[10:12, 10:12], diff[20:22, 20:22] = 0.9, 0.9, -0.9
    assert describe_spots(spots_in(diff, 0.3)) == "3 corrected spots circled: 2 with ink added, 1 with ink removed"
    assert describe_spots([]) == "no corrected spot"


def test_describe_spots_says_how_many_specks_were_too_small_to_circle():
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[2:4, 2:4] = -0.9
    regions = spots_in(diff, 0.3)
    assert describe_spots(regions, 31) == ("1 corrected spot circled: 1 with ink removed; "
                                            "31 smaller specks (under 3 pixels) not circled")
    assert describe_spots([], 1, min_area=4) == "no corrected spot; 1 smaller speck (under 4 pixels) not circled"
    assert describe_spots(regions, 0) == "1 corrected spot circled: 1 with ink removed"


def test_result_sheet_puts_the_panels_side_by_side_with_room_for_captions():
    panels = [np.full((280, 280, 3), value, dtype=np.uint8) for value in (0, 80, 160, 240)]
    sheet = result_sheet(panels, ["Input", "Reconstruction", "Difference", "Spots circled"])
    assert sheet.mode == "RGB"
    assert sheet.width > 4 * 280 and sheet.height > 280 + 10  # captions below
    assert sheet.width < 4 * 280 + 100  # margins, not more
    pixels = np.asarray(sheet)
    rows, columns = np.nonzero((pixels[:300] == 80).all(axis=2))  # the second panel, whole, right of the first
    assert rows.size == 280 * 280 and columns.min() > 280
    assert not (pixels[-20:] == 255).all()  # some caption text was drawn
    with pytest.raises(ValueError, match="captions"):
        result_sheet(panels, ["only one"])


def test_png_bytes_and_thumbnail_url_encode_a_png():
    digit = bar_digit()
    data = png_bytes(to_rgb(digit))
    assert data.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(data))
    assert image.size == (28, 28) and image.mode == "RGB"
    url = thumbnail_url(digit)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == data


def test_circles_are_drawn_around_regions_on_an_enlarged_copy():
    image = bar_digit()
    diff = np.zeros((28, 28), dtype=np.float32)
    diff[10:13, 20:23] = -0.8
    regions = spots_in(diff, 0.3)
    circled = circle_spots(image, regions, scale=10)
    assert circled.shape == (280, 280, 3) and circled.dtype == np.uint8
    red = (circled == CIRCLE_COLOUR).all(axis=2)
    # Red on the circle (left and right of the spot, at its radius), none on the spot itself.
    centre_y, centre_x = (11 + 0.5) * 10, (21 + 0.5) * 10
    radius_px = (regions[0].radius + 0.5) * 10
    assert red[int(centre_y), int(centre_x + radius_px) - 1: int(centre_x + radius_px) + 2].any()
    assert red[int(centre_y), int(centre_x - radius_px) - 1: int(centre_x - radius_px) + 2].any()
    assert not red[100:130, 200:230].any()
    # Without regions it is just the enlarged image.
    np.testing.assert_array_equal(circle_spots(image, [], scale=10), upscale(to_rgb(image), 10))


def test_upscale_repeats_pixels():
    out = upscale(np.array([[0.0, 1.0]]), 3)
    assert out.shape == (3, 6) and out[:, :3].max() == 0.0 and out[:, 3:].min() == 1.0


def test_the_downloaded_picture_carries_its_score_and_verdict_in_text_chunks_and_in_a_drawn_line():
    panels = [np.full((280, 280, 3), 0, dtype=np.uint8)] * 2
    plain = result_sheet(panels, ["Input", "Reconstruction"])
    summary = "vae-z64 | test #0 | blurred_error 3.74 > threshold 3.66 | ANOMALY"
    sheet = result_sheet(panels, ["Input", "Reconstruction"], summary)
    assert sheet.height > plain.height  # a line more, under the captions
    assert not (np.asarray(sheet)[plain.height:] == 255).all()  # with the summary drawn in it
    data = png_bytes(sheet, {"score": "3.74", "verdict": "anomaly", "summary": summary})
    image = Image.open(io.BytesIO(data))
    assert image.text == {"score": "3.74", "verdict": "anomaly", "summary": summary}
