"""vae.latent (embeddings, projections, cluster scores, decoded grids and tiles), on small synthetic arrays
and tiny untrained models."""
import numpy as np
import pytest
import torch

from studio.display import tile
from vae import ConvAE, ConvVAE
from vae.generate import decode_grid
from vae.latent import (
    cluster_scores,
    cluster_size_ratio,
    embed_dataset,
    embed_digit,
    knn_accuracy,
    reconstruct_rows,
    reduce,
)


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
    p = reduce(z, 2)
    assert p.method == "pca" and p.coords.shape == (500, 2)
    variances = p.coords.var(axis=0)
    assert variances[0] > variances[1] > 0
    assert p.explained_variance_ratio[0] > p.explained_variance_ratio[1]
    assert abs(p.explained_variance_ratio.sum() - (100 + 9) / 110) < 0.03
    # With all three axes the projection is a rotation: pairwise distances survive.
    p3 = reduce(z, 3, "pca")
    d_before = np.linalg.norm(z[:50, None] - z[None, :50], axis=-1)
    d_after = np.linalg.norm(p3.coords[:50, None] - p3.coords[None, :50], axis=-1)
    np.testing.assert_allclose(d_after, d_before, atol=1e-8)


def test_pca_places_new_points_like_the_fitted_ones():
    z, _ = blobs(8.0)
    p = reduce(z, 2, "pca")
    np.testing.assert_allclose(p.place(z[:4]), p.coords[:4], atol=1e-9)
    assert p.place(z[0]).shape == (1, 2)


def test_identity_when_the_latent_already_has_the_view_dims():
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    p = reduce(z, 3)
    assert p.method == "identity"
    np.testing.assert_array_equal(p.coords, z)
    first_two = reduce(z, 2, "identity")
    np.testing.assert_array_equal(first_two.coords, z[:, :2])
    np.testing.assert_array_equal(first_two.place(np.array([[7.0, 8.0, 9.0]])), [[7.0, 8.0]])


def test_project_rejects_impossible_views():
    with pytest.raises(ValueError, match="2 or 3"):
        reduce(np.zeros((5, 4)), 4)
    with pytest.raises(ValueError, match="2-D latent"):
        reduce(np.zeros((5, 2)), 3, "identity")
    with pytest.raises(ValueError, match="unknown projection"):
        reduce(np.zeros((5, 4)), 2, "umap")


def test_tsne_runs_on_a_seeded_subsample_and_places_new_points_at_their_nearest_neighbour():
    z, labels = blobs(20.0, n_per=30)
    p = reduce(z, 2, "tsne", sample_size=60, seed=3)
    assert p.coords.shape == (60, 2) and len(np.unique(p.rows)) == 60
    again = reduce(z, 2, "tsne", sample_size=60, seed=3)
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

def test_decoded_grid_tiles_like_the_scatter_plot():
    torch.manual_seed(0)
    model = ConvVAE(2).eval()
    extent = ((-2.0, 2.0), (-1.0, 1.0))
    images = decode_grid(model, extent, steps=4)
    assert images.shape == (16, 28, 28)
    image = tile(images, 4)
    assert 0.0 <= image.min() and image.max() <= 1.0
    # Bottom-left tile is the decoding of (x_min, y_min): the grid is laid out like the scatter plot.
    with torch.no_grad():
        corner = model.decode(torch.tensor([[-2.0, -1.0]]))[0, 0].numpy()
    np.testing.assert_allclose(image[-28:, :28], corner, atol=1e-5)
    with pytest.raises(ValueError, match="2-D latent"):
        decode_grid(ConvAE(3), extent, 2)



def test_tile_places_images_row_major_with_gaps():
    images = np.stack([np.full((2, 3), v) for v in (0.1, 0.2, 0.3)])
    out = tile(images, columns=2, gap=1, fill=1.0)
    assert out.shape == (5, 7)
    assert out[0, 0] == pytest.approx(0.1) and out[0, 4] == pytest.approx(0.2) and out[3, 0] == pytest.approx(0.3)
    assert out[2, 0] == 1.0 and out[3, 4] == 1.0  # gap row and the empty slot


def test_tile_keeps_its_columns_and_adds_no_border():
    images = np.stack([np.full((2, 3), v, dtype=np.float32) for v in (0.1, 0.2)])
    wide = tile(images, columns=4, gap=1, fill=0.0)  # fewer images than columns: the row stays 4 slots wide
    assert wide.shape == (2, 4 * 3 + 3) and (wide[:, 8:] == 0.0).all()
    assert wide[0, 0] == pytest.approx(0.1) and wide[-1, -9] == pytest.approx(0.2)  # no gap around the edge
    np.testing.assert_array_equal(tile(images[:1], columns=1, gap=2), images[0])  # one image: just itself
    np.testing.assert_array_equal(tile(images, columns=1), np.concatenate(list(images)))  # no gap: stacked


def test_reconstruct_rows_returns_the_chosen_images_reconstructions():
    torch.manual_seed(0)
    model = ConvAE(2).eval()
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    out = reconstruct_rows(model, images, [4, 1])
    with torch.no_grad():
        expected = model.reconstruct(images[[4, 1]].float() / 255)[:, 0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert reconstruct_rows(model, images, []).shape == (0, 28, 28)


def test_a_projection_subset_keeps_the_view_and_only_the_kept_points():
    from vae.latent import Projection

    coords, rows = np.arange(10.0).reshape(5, 2), np.array([3, 1, 4, 0, 2])
    view = Projection("pca", coords, rows, mean=np.zeros(4), components=np.ones((2, 4)),
                      explained_variance_ratio=np.array([0.6, 0.3]), fitted_latents=np.arange(20.0).reshape(5, 4))
    keep = np.array([True, False, True, False, False])
    part = view.subset(keep)
    assert part.rows.tolist() == [3, 4] and part.coords.tolist() == [[0, 1], [4, 5]]
    assert part.fitted_latents.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert part.method == "pca" and part.mean is view.mean and part.components is view.components
