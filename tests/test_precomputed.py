"""Which training images a model saw (vae.data.rows_seen_by), and the shipped precomputed files
(vae.precomputed): equal to a fresh computation, and ignored for another checkpoint or other data."""
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vae import precomputed
from vae.checkpoint import SHIPPED, checkpoint_dir, save_checkpoint
from vae.data import FALLBACK_SUBSET, MnistData, rows_seen_by, training_rows
from vae.latent import cluster_scores, embed_dataset
from vae.model import ConvVAE
from vae.scores import dataset_scores

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = checkpoint_dir()  # the test session's copy (tests/conftest.py)


def tiny_data(n_train=200, n_test=50, seed=0) -> MnistData:
    g = torch.Generator().manual_seed(seed)
    return MnistData(torch.randint(0, 256, (n_train, 1, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (n_train,), generator=g),
                     torch.randint(0, 256, (n_test, 1, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (n_test,), generator=g), "mnist")


def test_rows_seen_by_reproduces_the_training_subset_from_the_metadata():
    data = tiny_data()
    labels = data.train_labels.numpy()
    zeros = np.flatnonzero(labels == 0)
    # a one-class model on every 0: exactly the 0s
    assert rows_seen_by({"digits": [0], "train_images": len(zeros), "seed": 0}, labels).tolist() == zeros.tolist()
    # a random subset of two digits: the same images MnistData.select drew for its training
    for seed in (0, 3):
        chosen = data.select([1, 7], 10, seed=seed)
        rows = rows_seen_by({"digits": [7, 1], "train_images": 10, "seed": seed}, labels)
        assert len(rows) == 10 and set(labels[rows]) <= {1, 7}
        assert torch.equal(data.train_images[torch.from_numpy(rows)], chosen.train_images)
    assert not np.array_equal(rows_seen_by({"digits": [1, 7], "train_images": 10, "seed": 0}, labels),
                              rows_seen_by({"digits": [1, 7], "train_images": 10, "seed": 3}, labels))
    # all ten digits, every image: all rows; an older checkpoint without these keys: all rows too
    assert rows_seen_by({"digits": None, "train_images": 200, "seed": 0}, labels).tolist() == list(range(200))
    assert rows_seen_by({}, labels).tolist() == list(range(200))
    # trained on other data (the offline fallback): its subset cannot be drawn again, so all of its digits
    fallback_model = {"digits": [0], "train_images": 3, "seed": 0, "data_source": FALLBACK_SUBSET}
    assert rows_seen_by(fallback_model, labels, "mnist").tolist() == zeros.tolist()
    assert len(rows_seen_by(fallback_model, labels, FALLBACK_SUBSET)) == 3
    with pytest.raises(ValueError, match="no training images"):
        training_rows(np.array([1, 2, 3]), digits=[0])


@pytest.mark.parametrize("name", ["vae-z2.pt", "ae-z64.pt"])
def test_a_shipped_precomputed_file_equals_a_fresh_computation(name, mnist):
    from vae import load_checkpoint

    checkpoint = CHECKPOINTS / name
    pre = precomputed.load(checkpoint, mnist)
    assert pre is not None, f"no matching precomputed file for {name}: run scripts/write_precomputed.py"
    model, _ = load_checkpoint(checkpoint)
    rows = torch.from_numpy(np.random.default_rng(0).choice(60_000, 500, replace=False))
    test_rows = torch.arange(0, 10_000, 20)
    assert pre.train_errors[rows.numpy()] == pytest.approx(dataset_scores(model, mnist.train_images[rows]), rel=1e-5)
    assert pre.test_errors[test_rows.numpy()] == pytest.approx(dataset_scores(model, mnist.test_images[test_rows]), rel=1e-5)
    fresh = embed_dataset(model, mnist.test_images[test_rows])
    assert np.allclose(pre.test_embeddings[test_rows.numpy()], fresh, rtol=2e-3, atol=2e-3)  # stored as float16
    if model.latent_dim == 2:  # the scores themselves, from fresh full-precision embeddings
        fresh_scores = cluster_scores(embed_dataset(model, mnist.test_images), mnist.test_labels.numpy())
        assert pre.cluster_scores == pytest.approx(fresh_scores, abs=1e-9)


def test_every_shipped_model_has_a_small_precomputed_file():
    sizes = {name: precomputed.precomputed_path(CHECKPOINTS / name).stat().st_size for name in SHIPPED}
    assert all(size < 2_000_000 for size in sizes.values()), sizes
    assert sum(sizes.values()) < 8_000_000, sizes  # 7.0 MB: four z64 models (1.4 MB each, mostly test embeddings), four small


def test_another_checkpoint_or_other_data_is_computed_afresh(tmp_path):
    data = tiny_data()
    torch.manual_seed(0)
    checkpoint = save_checkpoint(ConvVAE(2), tmp_path / "mine.pt")
    model = ConvVAE(2)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["state_dict"])
    pre = precomputed.compute(model.eval(), data)
    folder = tmp_path / "precomputed"
    folder.mkdir()
    written = precomputed.write(precomputed.precomputed_path(checkpoint, folder), pre,
                                precomputed.file_sha256(checkpoint), data.source)
    assert [p.name for p in folder.iterdir()] == [written.name]  # no temp file left behind
    loaded = precomputed.load(checkpoint, data, folder)
    assert loaded is not None and loaded.train_errors == pytest.approx(pre.train_errors, rel=1e-6)
    assert loaded.cluster_scores == pre.cluster_scores
    assert precomputed.load(checkpoint, replace(data, source=FALLBACK_SUBSET), folder) is None  # the offline fallback
    assert precomputed.load(checkpoint, tiny_data(n_test=40), folder) is None  # other split sizes
    torch.manual_seed(1)
    save_checkpoint(ConvVAE(2), checkpoint)  # the same name, other weights: its hash no longer matches
    assert precomputed.load(checkpoint, data, folder) is None
    shutil.copy(checkpoint, tmp_path / "other.pt")
    assert precomputed.load(tmp_path / "other.pt", data, folder) is None  # no file of that name
    precomputed.write(written, pre, precomputed.file_sha256(checkpoint), data.source)
    assert precomputed.load(checkpoint, data, folder) is not None
    written.write_bytes(written.read_bytes()[:100])
    assert precomputed.load(checkpoint, data, folder) is None  # damaged: computed afresh, no error


def test_a_stored_projection_is_read_back_only_for_its_own_checkpoint_and_data(tmp_path):
    from vae.latent import reduce

    data = tiny_data()
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(ConvVAE(4), checkpoint, {"data_source": "mnist"})
    z = np.random.default_rng(0).normal(size=(len(data.test_images), 4))
    view = reduce(z, 2, "tsne", sample_size=30)
    path = precomputed.projection_path(checkpoint, "tsne", 30, tmp_path)
    precomputed.write_projection(path, view, precomputed.file_sha256(checkpoint), data.source)
    rows, coords = precomputed.load_projection(checkpoint, "tsne", 30, data, tmp_path)
    assert rows.tolist() == view.rows.tolist()
    np.testing.assert_allclose(coords, view.coords, rtol=1e-3, atol=1e-2)  # float16
    assert precomputed.load_projection(checkpoint, "tsne", 500, data, tmp_path) is None  # another sample size
    assert precomputed.load_projection(checkpoint, "tsne", 30, replace(data, source=FALLBACK_SUBSET), tmp_path) is None
    save_checkpoint(ConvVAE(4), checkpoint, {"data_source": "mnist"})  # retrained: another file
    assert precomputed.load_projection(checkpoint, "tsne", 30, data, tmp_path) is None


@pytest.mark.parametrize("name", [n for n in SHIPPED if "z64" in n])
def test_the_shipped_tsne_views_match_their_checkpoints(name, mnist):
    stored = precomputed.load_projection(CHECKPOINTS / name, "tsne", 2000, mnist)
    assert stored is not None, f"no t-SNE view for {name}: run scripts/write_precomputed.py --projections-only"
    rows, coords = stored
    assert len(rows) == len(set(rows.tolist())) == 2000 and coords.shape == (2000, 2)
    assert (precomputed.projection_path(CHECKPOINTS / name, "tsne", 2000)).stat().st_size < 50_000
