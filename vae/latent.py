"""The latent space (report Fig. 4/5): embeddings, 2-D/3-D views of them, cluster scores, decoded grids.

Everything here works on plain numpy arrays and models; the "Latent space" page lays out what these
functions return, and studio/latent_text.py holds what the pages say about it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .data import INFERENCE_CHUNK, to_float

PROJECTION_METHODS = {
    "identity": "the latent coordinates themselves",
    "pca": "PCA (principal components of the test embeddings)",
    "tsne": "t-SNE (on a random subsample)",
}
KNN_K = 5
SILHOUETTE_SAMPLE = 2000
TSNE_SAMPLE = 2000
IMAGE_SIZE = 28


@torch.no_grad()
def embed_dataset(model, uint8_images: torch.Tensor, batch_size: int = INFERENCE_CHUNK) -> np.ndarray:
    """uint8 images (N, 1, 28, 28) → (N, latent) float32 embeddings (the VAE's posterior means)."""
    model.eval()
    if len(uint8_images) == 0:
        return np.zeros((0, model.latent_dim), dtype=np.float32)
    parts = [model.embed(to_float(uint8_images[i:i + batch_size])).cpu() for i in range(0, len(uint8_images), batch_size)]
    return torch.cat(parts).numpy().astype(np.float32)


@torch.no_grad()
def embed_digit(model, digit: np.ndarray) -> np.ndarray:
    """One prepared 28×28 float digit in [0, 1] (what the Draw page holds) → its (latent,) embedding."""
    digit = np.asarray(digit, dtype=np.float32)
    if digit.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected a 28×28 digit, got an array of shape {digit.shape}")
    model.eval()
    return model.embed(torch.from_numpy(digit).view(1, 1, IMAGE_SIZE, IMAGE_SIZE))[0].cpu().numpy()


@dataclass(frozen=True)
class Projection:
    """Coordinates of some rows of a latent array in `dims` dimensions, and how to place new points.

    `rows` are the indices (into the projected array) of the points that have coordinates: all of
    them, except for t-SNE, which runs on a subsample.
    """

    method: str
    coords: np.ndarray  # (len(rows), dims)
    rows: np.ndarray  # (len(rows),) int
    mean: np.ndarray | None = None  # PCA: centre of the data
    components: np.ndarray | None = None  # PCA: (dims, latent) principal axes
    explained_variance_ratio: np.ndarray | None = None  # PCA: share of variance on each axis
    fitted_latents: np.ndarray | None = None  # t-SNE: the embedded subsample, for nearest neighbours

    def subset(self, keep: np.ndarray) -> Projection:
        """The same view of only the points where `keep` (a mask over `rows`) holds."""
        fitted = None if self.fitted_latents is None else self.fitted_latents[keep]
        return dataclasses.replace(self, coords=self.coords[keep], rows=self.rows[keep], fitted_latents=fitted)

    @property
    def dims(self) -> int:
        return self.coords.shape[1]

    def covariance(self, std: np.ndarray) -> np.ndarray | None:
        """The (dims, dims) covariance in this view of a diagonal Gaussian with σ `std` per latent axis (a
        VAE's posterior), or None where the view is not a linear map of the latent (t-SNE)."""
        variance = np.asarray(std, dtype=np.float64) ** 2
        if self.method == "identity":
            return np.diag(variance[:self.dims])
        if self.method == "pca":
            return (self.components * variance) @ self.components.T
        return None

    def place(self, z_new: np.ndarray) -> np.ndarray:
        """Coordinates for new latent vectors (M, latent) in this same view.

        PCA and identity map them exactly. t-SNE cannot place new points, so a new point takes the
        coordinates of its nearest neighbour (in the full latent space) among the embedded sample.
        """
        z_new = np.atleast_2d(np.asarray(z_new, dtype=np.float64))
        if self.method == "identity":
            return z_new[:, :self.dims]
        if self.method == "pca":
            return (z_new - self.mean) @ self.components.T
        distances = ((z_new[:, None, :] - self.fitted_latents[None, :, :]) ** 2).sum(-1)
        return self.coords[distances.argmin(axis=1)]


def pca(z: np.ndarray, dims: int) -> Projection:
    """Principal components (scikit-learn's exact SVD), axes ordered by explained variance.

    scikit-learn fixes each axis's sign, so reruns draw the same picture.
    Fewer points than `dims` give as many axes as points; without any variance the ratios are 0.
    """
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # no variance: sklearn divides 0 by 0
        fitted = PCA(n_components=min(dims, len(z)), svd_solver="full").fit(z)
    return Projection("pca", fitted.transform(z), np.arange(len(z)), mean=fitted.mean_,
                      components=fitted.components_,
                      explained_variance_ratio=np.nan_to_num(fitted.explained_variance_ratio_))


def tsne(z: np.ndarray, dims: int, sample_size: int = TSNE_SAMPLE, seed: int = 0) -> Projection:
    """t-SNE of a seeded random subsample of `sample_size` rows (t-SNE is quadratic-ish and slow)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    z = np.asarray(z, dtype=np.float64)
    rows = np.sort(np.random.default_rng(seed).permutation(len(z))[:sample_size])
    if len(rows) < 5:
        raise ValueError(f"t-SNE needs at least 5 points, got {len(rows)}")
    perplexity = min(30.0, (len(rows) - 1) / 3)  # sklearn requires perplexity < number of points
    # One OpenMP thread: on a busy 2-core machine sklearn's threaded Barnes-Hut t-SNE took 14 s for 60 points
    # (threads spinning against each other) against 0.4 s single-threaded.
    with threadpool_limits(limits=1, user_api="openmp"):
        coords = TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z[rows])
    return Projection("tsne", coords, rows, fitted_latents=z[rows])


def reduce(z: np.ndarray, dims: int, method: str | None = None, sample_size: int = TSNE_SAMPLE,
            seed: int = 0) -> Projection:
    """A `dims`-D view of latents z (N, latent).

    method None: the latent itself when it already has `dims` dimensions, else PCA.
    "identity": the first `dims` latent coordinates. "pca". "tsne": on `sample_size` seeded rows.
    """
    z = np.asarray(z)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"expected a non-empty (N, latent) array, got shape {z.shape}")
    if dims not in (2, 3):
        raise ValueError(f"a view has 2 or 3 dimensions, got {dims}")
    method = method or ("identity" if z.shape[1] == dims else "pca")
    if method == "identity":
        if z.shape[1] < dims:
            raise ValueError(f"a {z.shape[1]}-D latent has no {dims}-D identity view")
        return Projection("identity", z[:, :dims].astype(np.float64), np.arange(len(z)))
    if method == "pca":
        if z.shape[1] < dims:
            raise ValueError(f"PCA cannot make {dims} axes from a {z.shape[1]}-D latent")
        return pca(z, dims)
    if method == "tsne":
        return tsne(z, dims, sample_size, seed)
    raise ValueError(f"unknown projection {method!r}; choose one of {list(PROJECTION_METHODS)}")


def nearest_neighbours(z: np.ndarray, point: np.ndarray, k: int, exclude: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, distances) of the k rows of z (N, latent) nearest to `point` (latent,), Euclidean in the full
    latent space, nearest first (ties: the lower row); `exclude` leaves one row out (the point itself)."""
    z = np.asarray(z, dtype=np.float64)
    distances = np.sqrt(((z - np.asarray(point, dtype=np.float64)) ** 2).sum(axis=1))
    if exclude is not None and 0 <= exclude < len(z):
        distances[exclude] = np.inf
    order = np.lexsort((np.arange(len(z)), distances))[:max(0, min(k, len(z) - (exclude is not None)))]
    return order, distances[order]


def ellipse(centre: np.ndarray, covariance: np.ndarray, points: int = 64) -> np.ndarray:
    """(points, 2) on the 1-σ ellipse of a 2-D Gaussian: centre + the covariance's square root applied to the
    unit circle (closed: the last point is the first)."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, dtype=np.float64)[:2, :2])
    angle = np.linspace(0.0, 2 * np.pi, points)
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return np.asarray(centre, dtype=np.float64)[:2] + (circle * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def knn_correct(z: np.ndarray, labels: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """(N,) bool: whether each point is classified right by the majority label of its k nearest OTHER points
    (Euclidean, in the full latent), ties going to the smaller digit."""
    from sklearn.neighbors import NearestNeighbors

    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if len(z) <= k:
        raise ValueError(f"k-NN with k={k} needs more than {k} points, got {len(z)}")
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    # Drop each point itself; if a duplicate point came first, drop the farthest neighbour instead.
    is_self = neighbours == np.arange(len(z))[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    others = neighbours[~is_self].reshape(len(z), k)
    votes = np.zeros((len(z), labels.max() + 1), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(z)), k), labels[others].ravel()), 1)
    return votes.argmax(axis=1) == labels


def knn_accuracy(z: np.ndarray, labels: np.ndarray, k: int = KNN_K) -> float:
    """Leave-one-out k-NN digit accuracy: the share of knn_correct."""
    return float(knn_correct(z, labels, k).mean())


def cluster_size_ratio(z: np.ndarray, labels: np.ndarray) -> float:
    """Largest over smallest digit-cluster radius (RMS distance to the digit's centroid).

    1.0 means every digit's cluster is equally big; the report says the VAE's are more equal (Fig. 5).
    """
    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    radii = [np.sqrt(((z[labels == d] - z[labels == d].mean(axis=0)) ** 2).sum(axis=1).mean())
             for d in np.unique(labels)]
    smallest = min(radii)
    return float(max(radii) / smallest) if smallest > 0 else float("inf")


def cluster_scores(z: np.ndarray, labels: np.ndarray, k: int = KNN_K, silhouette_sample: int = SILHOUETTE_SAMPLE,
                   seed: int = 0) -> dict[str, float]:
    """How well the digits separate in the FULL latent space (not in a 2-D/3-D projection of it).

    knn_accuracy: leave-one-out k-NN digit accuracy over all given points (see knn_accuracy).
    silhouette: sklearn's silhouette score by digit label on a seeded subsample of
    `silhouette_sample` points (−1..1, higher = tighter, better separated clusters).
    size_ratio: largest / smallest digit-cluster radius (see cluster_size_ratio).
    """
    from sklearn.metrics import silhouette_score

    z = np.asarray(z, dtype=np.float64)
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("cluster scores need at least two different labels")
    sample = min(silhouette_sample, len(z))
    return {
        "knn_accuracy": knn_accuracy(z, labels, k),
        "silhouette": float(silhouette_score(z, labels, sample_size=sample, random_state=seed)),
        "size_ratio": cluster_size_ratio(z, labels),
    }


@torch.no_grad()
def reconstruct_rows(model, uint8_images: torch.Tensor, rows) -> np.ndarray:
    """The model's reconstructions (len(rows), 28, 28) in [0, 1] of the chosen dataset images."""
    rows = list(rows)
    if not rows:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    model.eval()
    return model.reconstruct(to_float(uint8_images[rows]))[:, 0].cpu().numpy()
