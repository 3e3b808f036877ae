"""vae.training_run after the last epoch: the phases a job reports (and their ETA), the spot calibration on a
subset in chunks, the last epoch's test loss reused; with real MNIST and a real (tiny) training run."""
import math

import numpy as np
import pytest
import torch

from vae.correction import calibrate_spot_level
from vae.model import build_model
from vae.train import Progress, evaluate_loss
from vae.training_run import (
    REPORT_EVERY_STEPS,
    SMALL_JOB_CALIBRATION,
    TrainingSpec,
    after_training_s,
    calibrate_with_progress,
    calibration_size,
    progress_fraction,
    progress_line,
    run_training,
)


def test_calibration_size_is_all_of_a_small_job_a_quarter_of_a_bigger_one_at_most_1000():
    assert calibration_size(10) == 10
    assert calibration_size(1000) == SMALL_JOB_CALIBRATION
    assert calibration_size(2000) == 500
    assert calibration_size(60_000) == 1000
    assert after_training_s(1000, 2000.0) > after_training_s(1000, 4000.0) > 0  # faster training, shorter wait


def test_calibrating_with_progress_gives_the_level_calibrate_spot_level_gives(small_mnist):
    from vae.correction import PROJECTION_STEPS

    torch.manual_seed(0)
    model = build_model("vae", 2, 1.0)
    images = small_mnist.train_images[:200]
    seen = []
    level = calibrate_with_progress(model, images, 107, lambda done, total: seen.append((done, total)))
    assert level == calibrate_spot_level(model, images, n=107)  # the same sample, the same batch: the same level
    assert seen == [(step, PROJECTION_STEPS) for step in range(REPORT_EVERY_STEPS, PROJECTION_STEPS + 1, REPORT_EVERY_STEPS)]


def test_a_job_reports_each_phase_after_training_and_its_eta_counts_them(small_mnist, tmp_path):
    reports: list[Progress] = []
    spec = TrainingSpec(kind="vae", latent_dim=2, epochs=1, batch_size=32, train_size=128)
    path, metadata, result = run_training(spec, folder=tmp_path, data=small_mnist, on_progress=reports.append)
    phases = [p.phase for p in reports]
    assert phases[0] == "training" and phases.index("scoring") < phases.index("calibrating") < phases.index("saving")
    training = [p for p in reports if p.phase == "training"]
    assert training[-1].epoch_end and training[-1].eta_s > 0  # the phases after training still to come
    calibrating = [p for p in reports if p.phase == "calibrating"]
    assert calibrating[-1].phase_done == calibrating[-1].phase_total == 100  # Adam steps of the fit
    assert metadata["spot_calibration_images"] == 128  # all of a job this small
    assert all(math.isfinite(p.eta_s) and p.eta_s >= 0 for p in reports)
    # The last epoch's test loss is the checkpoint's: the same model, the same seeded evaluation.
    assert metadata["test_loss"] == pytest.approx(evaluate_loss_of(path, small_mnist))
    assert metadata["test_loss"]["total"] == result.history[-1]["test_total"]


def evaluate_loss_of(path, data):
    from vae import load_checkpoint

    model, _ = load_checkpoint(path, "cpu")
    return evaluate_loss(model, data.test_images)


def _progress(**changes) -> Progress:
    p = Progress(epoch=2, epochs=5, step=3, steps_per_epoch=4, images_seen=1000, images_per_s=812.4, eta_s=65.0,
                 train_loss={"total": 1.0, "recon": 1.0, "kl": 0.0}, reported_at=100.0)
    for name, value in changes.items():
        setattr(p, name, value)
    return p


def test_the_progress_line_counts_down_from_the_report_and_never_says_zero():
    assert progress_line(_progress(), now=100.0) == "Epoch 2/5 · 812 img/s · about 1m05s left"
    assert progress_line(_progress(), now=110.0) == "Epoch 2/5 · 812 img/s · about 55s left"  # no new report: moves
    assert progress_line(_progress(), now=170.0).endswith("finishing…")  # past the estimate: no '0s'
    calibrating = _progress(phase="calibrating", phase_done=60, phase_total=100, eta_s=4.0)
    assert progress_line(calibrating, now=100.0) == "Calibrating the spots: step 60 of 100 · about 4s left"
    assert progress_line(None, now=0.0).startswith("Starting")


def test_the_progress_fraction_is_time_done_over_time_done_and_left():
    assert progress_fraction(None, None, 5.0) == 0.0
    assert progress_fraction(_progress(eta_s=30.0), first_report=70.0, now=100.0) == pytest.approx(0.5)
    assert progress_fraction(_progress(eta_s=1.0), first_report=0.0, now=500.0) == 0.99  # never full while running
    assert np.isfinite(progress_fraction(_progress(eta_s=0.0), first_report=100.0, now=100.0))
