"""The fully-connected baseline (fc-ae, fc-vae) through every path the conv kinds take: build, train, the
trainer's shift augmentation, checkpoint, scores, CLI, the app's job runner and registry; and vae/shifts.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from vae import anomaly_score, load_checkpoint
from vae.checkpoint import CheckpointError, save_checkpoint
from vae.data import default_data_root, to_float
from vae.fc_model import FcAE, FcVAE, conv_parameter_count, fc_parameter_count, matched_width
from vae.generate import posterior_of, sample_prior
from vae.model import MODEL_KINDS, build_model
from vae.scores import SCORES
from vae.server import jobs, registry
from vae.shifts import random_shifts, rotate_images, shift_along_random_axis, shift_digit, shift_images
from vae.train import TrainConfig, evaluate_loss, train
from vae.training_run import TrainingSpec

from conftest import ROOT, subprocess_env

FC_KINDS = ("fc-ae", "fc-vae")


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", FC_KINDS)
def test_a_fully_connected_model_has_the_conv_models_parameter_budget(kind):
    model = build_model(kind, 64)
    assert isinstance(model, FcVAE if kind == "fc-vae" else FcAE) and kind in MODEL_KINDS
    conv = conv_parameter_count(kind, 64)
    assert _params(model) == fc_parameter_count(kind, 64, model.hidden)
    assert abs(_params(model) - conv) / conv < 0.01  # 94,238 vs 94,664; 131,300 vs 131,528
    assert model.hidden == matched_width(kind, 64) and model.variational == (kind == "fc-vae")
    x = torch.rand(5, 1, 28, 28)
    assert model.reconstruct(x).shape == (5, 1, 28, 28) and model.embed(x).shape == (5, 64)
    assert set(model.loss(x)) == {"total", "recon", "kl"}
    assert _params(FcAE(64, hidden=512)) == 870_224  # the shift benchmark's larger one: 784-512-64-512-784


@pytest.mark.parametrize("kind", FC_KINDS)
def test_fc_kinds_train_save_load_and_score(small_mnist, tmp_path, kind):
    torch.manual_seed(0)
    model = build_model(kind, 8)
    before = evaluate_loss(model, small_mnist.test_images[:256])["total"]
    train(model, small_mnist, TrainConfig(epochs=2, batch_size=64, seed=0, evaluate_each_epoch=False, device="cpu"))
    after = evaluate_loss(model, small_mnist.test_images[:256])["total"]
    assert after < before
    path = save_checkpoint(model, tmp_path / f"{kind}.pt", {"epochs": 2})
    loaded, metadata = load_checkpoint(path)
    assert (loaded.kind, loaded.latent_dim, metadata["kind"]) == (kind, 8, kind)
    x = to_float(small_mnist.test_images[:16])
    assert torch.equal(loaded.reconstruct(x), model.eval().reconstruct(x))
    for score in SCORES:
        if score == "kl" and kind == "fc-ae":
            with pytest.raises(ValueError, match="needs a VAE"):
                anomaly_score(loaded, x, score)
            continue
        values = anomaly_score(loaded, x, score)
        assert values.shape == (16,) and torch.isfinite(values).all(), score
    digit = x[0, 0].numpy()
    assert (posterior_of(loaded, digit) is None) == (kind == "fc-ae")
    if kind == "fc-vae":
        assert sample_prior(loaded, 3, seed=0).shape == (3, 28, 28)
    entry = registry.entry_for(path)
    assert entry.ok and entry.label.startswith(f"{kind} · {kind.upper()} z=8")


def test_a_checkpoint_of_another_width_is_refused_with_a_reason(tmp_path):
    path = save_checkpoint(FcAE(64, hidden=512), tmp_path / "wide.pt")
    with pytest.raises(CheckpointError, match="does not match the FC-AE baseline's architecture"):
        load_checkpoint(path)


def test_training_with_shifts_moves_every_batch_and_stays_seeded(small_mnist):
    def run(shift_px):
        torch.manual_seed(0)
        model = build_model("fc-ae", 8)
        train(model, small_mnist, TrainConfig(epochs=1, batch_size=128, seed=0, evaluate_each_epoch=False,
                                              device="cpu", shift_px=shift_px))
        return model.state_dict()["decoder.fc2.weight"]
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(0))
    with pytest.raises(ValueError, match="shift must be 0 to 8 px"):
        TrainConfig(shift_px=9)


def test_shift_images_moves_by_exactly_the_pixels_asked_and_fills_with_zero():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).view(2, 1, 28, 28) + 1
    moved = shift_images(x, 2, -3)  # down 2, left 3
    assert torch.equal(moved[:, :, 2:, :25], x[:, :, :26, 3:])
    assert (moved[:, :, :2] == 0).all() and (moved[..., 25:] == 0).all()
    each = shift_images(x, torch.tensor([1, -1]), torch.tensor([0, 2]))
    assert torch.equal(each[0, 0, 1:], x[0, 0, :27]) and torch.equal(each[1, 0, :27, 2:], x[1, 0, 1:, :26])
    assert torch.equal(shift_images(x, 0, 0), x)
    digit = x[0, 0].numpy()
    assert np.array_equal(shift_digit(digit, -1, 4)[:27, 4:], digit[1:, :24])
    uint8 = (torch.rand(64, 1, 28, 28) * 255).to(torch.uint8)
    assert shift_images(uint8, 1, 1).dtype == torch.uint8
    along = shift_along_random_axis(uint8, 3, seed=1)
    # each image moved 3 px along one axis: equal to one of the four moves of it
    for image, out in zip(uint8, along):
        assert any(torch.equal(out, shift_images(image[None], dy, dx)[0]) for dy, dx in ((0, 3), (0, -3), (3, 0), (-3, 0)))
    assert torch.equal(random_shifts(uint8, 2, torch.Generator().manual_seed(5)),
                       random_shifts(uint8, 2, torch.Generator().manual_seed(5)))
    turned = rotate_images(uint8, 10, seed=0)
    assert turned.dtype == torch.uint8 and turned.shape == uint8.shape


@pytest.mark.slow  # a `python -m vae train` process
def test_cli_trains_an_fc_vae(tmp_path, mnist_root):
    run = subprocess.run([sys.executable, "-m", "vae", "train", "--model", "fc-vae", "--latent", "4", "--epochs", "1",
                          "--train-size", "500", "--data-root", str(mnist_root), "--out", str(tmp_path / "fc.pt"),
                          "--threads", "1"], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    model, metadata = load_checkpoint(tmp_path / "fc.pt")
    assert (model.kind, metadata["train_images"]) == ("fc-vae", 500) and metadata["spot_level"] is not None


@pytest.mark.slow  # a training job: a `python -m vae` process
def test_the_apps_job_runner_trains_an_fc_ae(tmp_path):
    spec = jobs.spec_from_form("fc-ae", 4, 1, 128, 0.01, 5.0, [], 512)
    assert spec.kind == "fc-ae" and spec.beta == 1.0  # β is a VAE's only
    assert jobs.describe_spec(spec).startswith("FC-AE z=4")
    (tmp_path / "models").mkdir()
    manager = jobs.JobManager(folder=tmp_path / "models", data_root=default_data_root(), cores=1)
    try:
        job = manager.wait(manager.start(spec, owner="c" * 32).id, 240)
    finally:
        manager.shutdown()
    assert job.state == jobs.DONE, job.error
    assert job.path.name.startswith("fc-ae-z4-")
    assert load_checkpoint(job.path)[0].kind == "fc-ae"
    with pytest.raises(ValueError, match="model kind must be one of"):
        jobs.spec_from_form("fc-cnn", 4, 1, 128, 0.01, 1.0, [], 512)  # a forged radio value


def test_training_spec_accepts_fc_kinds():
    assert TrainingSpec(kind="fc-vae", latent_dim=3).kind == "fc-vae"
