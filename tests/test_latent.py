"""vae.latent (projections, cluster scores, decoded grids, chart selections) and the histogram helpers
in vae.errors, on small synthetic arrays and tiny untrained models."""
import numpy as np
import pytest
import torch

from vae import ConvAE, ConvVAE
from vae.errors import (expected_share_of_test, share_of_test_above, share_of_test_per_bin, shared_bins,
                        split_histogram, top_errors)
from vae.correction import upscale
from vae.latent import (cluster_scores, cluster_size_ratio, compare_cluster_scores, embed_dataset, embed_digit,
                        grid_extent, knn_accuracy, latent_grid, project, reconstruct_rows, selection_to_rows, tile)


def blobs(separation: float, n_per: int = 60, dims: int = 5, seed: int = 0):
    """Three Gaussian clusters whose centres lie `separation` apart along different axes."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, dims) * separation
    z = np.concatenate([c + rng.normal(size=(n_per, dims)) for c in centres])
    return z, np.repeat(np.arange(3), n_per)


# --- embeddings ------------------------------------------------------------------------------------------

def test_embed_dataset_matches_model_embed_and_batches():
    torch.manual_seed(0)
    model = ConvVAE(3).eval()
    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    z = embed_dataset(model, images, batch_size=3)
    assert z.shape == (7, 3) and z.dtype == np.float32
    with torch.no_grad():
        expected = model.embed(images.float() / 255).numpy()
    np.testing.assert_allclose(z, expected, atol=1e-5)
    assert embed_dataset(model, images[:0]).shape == (0, 3)


def test_embed_digit_takes_a_28x28_array_and_rejects_other_shapes():
    model = ConvAE(2).eval()
    digit = np.zeros((28, 28), dtype=np.float32)
    digit[8:20, 13:15] = 1.0
    assert embed_digit(model, digit).shape == (2,)
    with pytest.raises(ValueError, match="28×28"):
        embed_digit(model, np.zeros((1, 28, 28)))


# --- projections -----------------------------------------------------------------------------------------

def test_pca_orders_axes_by_variance_and_keeps_distances_of_a_flat_cloud():
    rng = np.random.default_rng(1)
    # Variance 100, 9, 1 along three random orthogonal directions in 6-D, nothing along the rest.
    basis, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    z = (rng.normal(size=(500, 3)) * [10.0, 3.0, 1.0]) @ basis[:3] + 5.0
    p = project(z, 2)
    assert p.method == "pca" and p.coords.shape == (500, 2)
    variances = p.coords.var(axis=0)
    assert variances[0] > variances[1] > 0
    assert p.explained_variance_ratio[0] > p.explained_variance_ratio[1]
    assert abs(p.explained_variance_ratio.sum() - (100 + 9) / 110) < 0.03
    # With all three axes the projection is a rotation: pairwise distances survive.
    p3 = project(z, 3, "pca")
    d_before = np.linalg.norm(z[:50, None] - z[None, :50], axis=-1)
    d_after = np.linalg.norm(p3.coords[:50, None] - p3.coords[None, :50], axis=-1)
    np.testing.assert_allclose(d_after, d_before, atol=1e-8)


def test_pca_places_new_points_like_the_fitted_ones():
    z, _ = blobs(8.0)
    p = project(z, 2, "pca")
    np.testing.assert_allclose(p.place(z[:4]), p.coords[:4], atol=1e-9)
    assert p.place(z[0]).shape == (1, 2)


def test_identity_when_the_latent_already_has_the_view_dims():
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = project(z, 3)
    assert p.method == "identity"
    np.testing.assert_array_equal(p.coords, z)
    first_two = project(z, 2, "identity")
    np.testing.assert_array_equal(first_two.coords, z[:, :2])
    np.testing.assert_array_equal(first_two.place(np.array([[7.0, 8.0, 9.0]])), [[7.0, 8.0]])


def test_project_rejects_impossible_views():
    with pytest.raises(ValueError, match="2 or 3"):
        project(np.zeros((5, 4)), 4)
    with pytest.raises(ValueError, match="2-D latent"):
        project(np.zeros((5, 2)), 3, "identity")
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.zeros((5, 4)), 2, "umap")


def test_tsne_runs_on_a_seeded_subsample_and_places_new_points_at_their_nearest_neighbour():
    z, labels = blobs(20.0, n_per=30)
    p = project(z, 2, "tsne", sample_size=60, seed=3)
    assert p.coords.shape == (60, 2) and len(np.unique(p.rows)) == 60
    again = project(z, 2, "tsne", sample_size=60, seed=3)
    np.testing.assert_array_equal(p.rows, again.rows)
    sampled = p.rows[5]
    np.testing.assert_allclose(p.place(z[sampled] + 1e-6), p.coords[[5]])


# --- cluster scores --------------------------------------------------------------------------------------

def test_separated_clusters_score_higher_than_mixed_ones():
    separated = cluster_scores(*blobs(12.0))
    mixed = cluster_scores(*blobs(0.3))
    assert separated["knn_accuracy"] > 0.95 > 0.7 > mixed["knn_accuracy"]
    assert separated["silhouette"] > 0.5 > mixed["silhouette"]


def test_knn_accuracy_is_leave_one_out():
    # Two points per label far apart from the others: with k=1 each point's only other neighbour
    # is its twin (right label); counting itself would not change that, so make the twin wrong.
    z = np.array([[0.0], [0.1], [10.0], [10.1]])
    assert knn_accuracy(z, np.array([0, 0, 1, 1]), k=1) == 1.0
    assert knn_accuracy(z, np.array([0, 1, 0, 1]), k=1) == 0.0


def test_cluster_size_ratio_sees_unequal_clusters():
    rng = np.random.default_rng(0)
    equal = np.concatenate([rng.normal(size=(200, 2)), 50 + rng.normal(size=(200, 2))])
    unequal = np.concatenate([rng.normal(size=(200, 2)), 50 + 4 * rng.normal(size=(200, 2))])
    labels = np.repeat([0, 1], 200)
    assert cluster_size_ratio(equal, labels) < 1.3 < 3.0 < cluster_size_ratio(unequal, labels)


def test_cluster_scores_need_two_labels():
    with pytest.raises(ValueError, match="two different labels"):
        cluster_scores(np.zeros((10, 2)), np.zeros(10))


# --- decoded grid and tiles ------------------------------------------------------------------------------

def test_latent_grid_is_one_tiled_image_of_decoded_digits():
    torch.manual_seed(0)
    model = ConvVAE(2).eval()
    extent = ((-2.0, 2.0), (-1.0, 1.0))
    image = latent_grid(model, extent, steps=4)
    assert image.shape == (4 * 28, 4 * 28)
    assert 0.0 <= image.min() and image.max() <= 1.0
    # Bottom-left tile is the decoding of (x_min, y_min): the grid is laid out like the scatter plot.
    with torch.no_grad():
        corner = model.decode(torch.tensor([[-2.0, -1.0]]))[0, 0].numpy()
    np.testing.assert_allclose(image[-28:, :28], corner, atol=1e-5)
    with pytest.raises(ValueError, match="2-D latent"):
        latent_grid(ConvAE(3), extent, 2)


def test_grid_extent_spans_the_percentiles():
    z = np.stack([np.linspace(0, 100, 101), np.linspace(-1, 1, 101)], axis=1)
    (x0, x1), (y0, y1) = grid_extent(z, percentile=5)
    assert (x0, x1) == pytest.approx((5, 95)) and (y0, y1) == pytest.approx((-0.9, 0.9))


def test_tile_places_images_row_major_with_gaps():
    images = np.stack([np.full((2, 3), v) for v in (0.1, 0.2, 0.3)])
    out = tile(images, columns=2, gap=1, fill=1.0)
    assert out.shape == (5, 7)
    assert out[0, 0] == pytest.approx(0.1) and out[0, 4] == pytest.approx(0.2) and out[3, 0] == pytest.approx(0.3)
    assert out[2, 0] == 1.0 and out[3, 4] == 1.0  # gap row and the empty slot


def test_reconstruct_rows_returns_the_chosen_images_reconstructions():
    torch.manual_seed(0)
    model = ConvAE(2).eval()
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    out = reconstruct_rows(model, images, [4, 1])
    with torch.no_grad():
        expected = model.reconstruct(images[[4, 1]].float() / 255)[:, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert reconstruct_rows(model, images, []).shape == (0, 28, 28)


# --- chart selections ------------------------------------------------------------------------------------

def test_selection_maps_customdata_of_per_digit_traces_to_dataset_rows():
    # Two traces (digits 3 and 7): point_index restarts at 0 in each, customdata holds the row.
    event = {"selection": {
        "points": [
            {"curve_number": 0, "point_index": 0, "point_number": 0, "x": 1.0, "y": 2.0, "customdata": 42},
            {"curve_number": 1, "point_index": 0, "point_number": 0, "x": 3.0, "y": 1.0, "customdata": [917, 7]},
            {"curve_number": 1, "point_index": 5, "x": 3.0, "y": 1.0, "customdata": [42, 3]},  # repeat
        ],
        "point_indices": [0, 0, 5], "box": [], "lasso": [],
    }}
    assert selection_to_rows(event) == [42, 917]


def test_selection_falls_back_to_trace_rows_and_skips_points_without_a_row():
    trace_rows = [[10, 11, 12], [20, 21]]
    event = {"selection": {"points": [
        {"curve_number": 1, "point_index": 1},
        {"curve_number": 0, "point_index": 2},
        {"curve_number": 2, "point_index": 0},  # e.g. the "your digit" marker: no row
    ]}}
    assert selection_to_rows(event, trace_rows) == [21, 12]
    assert selection_to_rows(event) == []


@pytest.mark.parametrize("event", [None, {}, {"selection": {}}, {"selection": {"points": []}}])
def test_empty_selections_select_nothing(event):
    assert selection_to_rows(event) == []


# --- histogram helpers (vae.errors) ----------------------------------------------------------------------

def test_shared_bins_cover_both_splits_and_histograms_are_percent_of_each_split():
    train = np.array([1.0, 2.0, 2.0, 3.0])
    test = np.array([2.0, 5.0])
    edges = shared_bins(train, test, bins=4)
    assert edges[0] == 1.0 and edges[-1] == 5.0 and len(edges) == 5
    counts, percent = split_histogram(train, edges)
    assert counts.tolist() == [1, 2, 1, 0] and percent.tolist() == [25.0, 50.0, 25.0, 0.0]
    test_counts, test_percent = split_histogram(test, edges)
    assert test_counts.tolist() == [0, 1, 0, 1]  # the maximum lands in the last bin
    tail_counts, tail_percent = split_histogram(train, shared_bins(train, test, bins=2, low=2.5))
    assert tail_counts.tolist() == [1, 0] and tail_percent.tolist() == [25.0, 0.0]  # percent of the whole split
    assert len(shared_bins(np.ones(3), np.ones(2), bins=3)) == 4  # equal errors still give a range


def test_test_share_per_bin_and_above_a_limit():
    share = share_of_test_per_bin(np.array([6, 1, 0, 1]), np.array([1, 1, 0, 3]), min_images=2)
    assert share[0] == pytest.approx(1 / 7) and share[1] == 0.5 and np.isnan(share[2]) and share[3] == 0.75
    assert expected_share_of_test(60000, 10000) == pytest.approx(1 / 7)
    fraction, count = share_of_test_above(np.array([1.0, 2.0, 9.0]), np.array([8.0, 10.0]), limit=5.0)
    assert (fraction, count) == (pytest.approx(2 / 3), 3)
    assert np.isnan(share_of_test_above(np.array([1.0]), np.array([1.0]), 5.0)[0])


def test_top_errors_are_largest_first():
    assert top_errors(np.array([0.5, 3.0, 1.0, 2.0]), 3).tolist() == [1, 3, 2]
    assert top_errors(np.array([1.0]), 5).tolist() == [0]


# --- comparison sentence and enlarging -------------------------------------------------------------------

def test_compare_cluster_scores_says_what_the_numbers_show():
    ae = {"knn_accuracy": 0.80, "silhouette": 0.10, "size_ratio": 2.0}
    tighter = {"knn_accuracy": 0.90, "silhouette": 0.30, "size_ratio": 1.2}
    looser = {"knn_accuracy": 0.70, "silhouette": 0.05, "size_ratio": 3.0}
    assert "VAE's clusters are tighter, as the report says" in compare_cluster_scores(ae, tighter)
    assert "silhouette (0.300 vs 0.100)" in compare_cluster_scores(ae, tighter)
    sentence = compare_cluster_scores(ae, looser)
    assert "AE's clusters are tighter, unlike the report" in sentence and "size ratio (2.000 vs 3.000)" in sentence
    assert "mixed" in compare_cluster_scores(ae, {**tighter, "silhouette": 0.0})
    assert compare_cluster_scores(ae, ae) == "The AE and the VAE score the same."


def test_upscale_repeats_pixels():
    out = upscale(np.array([[0.0, 1.0]]), 3)
    assert out.shape == (3, 6) and out[:, :3].max() == 0.0 and out[:, 3:].min() == 1.0
