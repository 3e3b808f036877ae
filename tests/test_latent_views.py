"""The Latent page's new pieces without Streamlit: nearest neighbours in the full latent, the posterior's 1-σ
ellipse in a view, the grid's codes and a 3-D latent's slice, the background runs, the shown digits' order,
the positions of picked rows in a trace, and the figure's JSON keeping each trace's uid."""
import threading
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from studio.latent_text import code_text, neighbour_caption, positions_in, shown_digits
from vae import ConvAE, ConvVAE
from vae.background import Background
from vae.generate import decode_points, decode_slice, grid_codes
from vae.latent import ellipse, nearest_neighbours, reduce


def test_nearest_neighbours_are_the_closest_rows_in_the_full_latent_nearest_first():
    z = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])
    rows, distances = nearest_neighbours(z, z[0], 3, exclude=0)
    assert rows.tolist() == [2, 4, 3]  # a tie goes to the lower row
    np.testing.assert_allclose(distances, [1.0, 1.0, 2.0])
    rows, _ = nearest_neighbours(z, np.array([3.0, 0.0, 0.1]), 2)
    assert rows.tolist() == [1, 2]
    assert len(nearest_neighbours(z, z[0], 10, exclude=0)[0]) == 4  # never the point itself, never more than there are


def test_the_posterior_ellipse_is_one_sigma_in_the_identity_view_and_projected_in_pca():
    z = np.random.default_rng(0).normal(size=(200, 2))
    identity = reduce(z, 2, "identity")
    ring = ellipse(identity.place(np.array([0.5, -1.0]))[0], identity.covariance(np.array([0.2, 0.4])))
    np.testing.assert_allclose(((ring[:, 0] - 0.5) / 0.2) ** 2 + ((ring[:, 1] + 1.0) / 0.4) ** 2, 1.0, atol=1e-9)
    np.testing.assert_allclose(ring[0], ring[-1])  # closed
    wide = np.random.default_rng(1).normal(size=(300, 5)) * [3, 2, 1, 0.5, 0.1]
    pca = reduce(wide, 2, "pca")
    std = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    covariance = pca.covariance(std)
    np.testing.assert_allclose(covariance, pca.components @ np.diag(std ** 2) @ pca.components.T)
    # Every point of the ellipse is at Mahalanobis distance 1 from its centre.
    ring = ellipse(np.zeros(2), covariance)
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", ring, np.linalg.inv(covariance), ring), 1.0, atol=1e-9)
    tsne = reduce(wide[:30], 2, "tsne", sample_size=30)
    assert tsne.covariance(std) is None  # no linear map: no ellipse


def test_grid_codes_lay_out_like_the_scatter_and_a_slice_fixes_the_third_axis():
    codes = grid_codes(((-1.0, 1.0), (0.0, 2.0)), 3, (0.5,))
    assert codes.shape == (9, 3)
    np.testing.assert_allclose(codes[0], [-1.0, 2.0, 0.5])  # top left: smallest z1, largest z2
    np.testing.assert_allclose(codes[-1], [1.0, 0.0, 0.5])
    torch.manual_seed(0)
    model = ConvVAE(3).eval()
    images = decode_slice(model, ((-1.0, 1.0), (0.0, 2.0)), 3, 0.5)
    np.testing.assert_allclose(images, decode_points(model, codes), atol=1e-6)
    with pytest.raises(ValueError, match="3-D latent"):
        decode_slice(ConvAE(2), ((-1.0, 1.0), (0.0, 2.0)), 3, 0.5)


def test_background_runs_once_per_key_and_reports_result_or_error():
    background = Background()
    release = threading.Event()
    calls = []

    def work():
        calls.append(1)
        release.wait(10)
        return 42

    assert background.status("a") is None
    background.start("a", work)
    background.start("a", work)  # already there: not run again
    assert background.status("a").done is False
    release.set()
    for _ in range(100):
        if background.status("a").done:
            break
        time.sleep(0.05)
    assert background.status("a").result == 42 and len(calls) == 1
    background.start("b", lambda: 1 / 0)
    for _ in range(100):
        if background.status("b").done:
            break
        time.sleep(0.05)
    assert background.status("b").error.startswith("ZeroDivisionError")


def test_shown_digits_are_in_digit_order_whatever_order_they_were_clicked_in():
    assert shown_digits([8, 3, 5]) == [3, 5, 8]
    assert shown_digits([3, 3, "7", 11, -1, True, 2.0]) == [3]  # whatever the browser sends: digits only


def test_positions_in_a_trace_of_the_picked_rows():
    assert positions_in(np.array([10, 11, 12, 13]), [13, 11, 99]) == [1, 3]
    assert positions_in(np.array([10, 11]), []) == []


def test_the_words_for_a_neighbour_and_a_code():
    assert neighbour_caption(12, 7, 0.1234) == "#12 · 7 · d=0.12"
    assert code_text(np.array([0.123, -1.3, 2.0])) == "(0.12, -1.30, 2.00)"


def test_the_figures_json_keeps_each_traces_uid():
    import json

    from studio.plotly_view import figure_json

    figure = go.Figure([go.Scattergl(x=[1, 2], y=[3, 4], uid="digit-3", name="3"), go.Scattergl(x=[1], y=[1])])
    data = json.loads(figure_json(figure))["data"]
    assert data[0]["uid"] == "digit-3" and "uid" not in data[1]
