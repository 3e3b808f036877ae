"""The trainer on a small real MNIST subset: reproducible, reports progress, stops on request,
refuses to go on when the loss explodes, validates its config, follows its learning-rate schedule;
evaluate_loss is deterministic; the CLI, the app's form and the training spec share TrainConfig's recipe."""
from __future__ import annotations

import math

import pytest
import torch

from vae.cli import build_parser
from vae.model import build_model
from vae.server.limits import FORM_RANGES
from vae.train import WARMUP_DIVISOR, Progress, TrainConfig, TrainingDiverged, TrainResult, evaluate_loss, train
from vae.training_run import TrainingSpec

SMALL = dict(epochs=2, batch_size=128, lr=1e-2)


def _fresh(kind: str = "vae", latent: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(kind, latent)


def _run(data, kind="vae", on_progress=None, **config):
    model = _fresh(kind)
    result = train(model, data, TrainConfig(**{**SMALL, **config}), on_progress)
    return model, result


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_same_seed_gives_identical_weights(small_mnist, kind):
    a, result_a = _run(small_mnist, kind)
    b, result_b = _run(small_mnist, kind)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert result_a.history == result_b.history
    # ... and the seed matters: another seed shuffles and samples differently.
    c, _ = _run(small_mnist, kind, seed=1)
    assert not torch.equal(c.state_dict()["decoder.conv1.weight"], sa["decoder.conv1.weight"])


def test_progress_reports_and_result(small_mnist):
    reports: list[Progress] = []
    model, result = _run(small_mnist, on_progress=reports.append)
    steps = 1024 // 128
    step_reports = [p for p in reports if not p.epoch_end]
    ends = [p for p in reports if p.epoch_end]
    assert len(step_reports) == 2 * steps and len(ends) == 2
    assert [(p.epoch, p.step) for p in step_reports] == [(e, s) for e in (1, 2) for s in range(1, steps + 1)]
    assert all(p.epochs == 2 and p.steps_per_epoch == steps for p in reports)
    assert [p.images_seen for p in step_reports] == [128 * i for i in range(1, 2 * steps + 1)]
    assert all(p.images_per_s > 0 and math.isfinite(p.eta_s) and p.eta_s >= 0 for p in reports)
    assert step_reports[0].eta_s > step_reports[-1].eta_s
    assert ends[-1].eta_s == 0
    assert step_reports[-1].eta_s > 0  # the last epoch's test loss is still to come, and counted
    assert all(p.phase == "training" and p.reported_at > 0 for p in reports)
    assert step_reports[-1].fraction_done == pytest.approx(1.0)
    assert step_reports[0].fraction_done == pytest.approx(1 / (2 * steps))
    assert all(p.test_loss is None for p in step_reports)
    assert all(set(p.train_loss) == {"total", "recon", "kl"} for p in reports)

    for epoch, end in enumerate(ends, start=1):
        assert end.epoch == epoch and end.step == steps
        assert set(end.test_loss) == {"total", "recon", "kl"}
        assert all(math.isfinite(v) for v in end.test_loss.values())
        assert end.test_loss["total"] == pytest.approx(end.test_loss["recon"] + end.test_loss["kl"], rel=1e-5)
    assert ends[1].test_loss["total"] < ends[0].test_loss["total"]  # it learns
    assert ends[1].train_loss["total"] < step_reports[0].train_loss["total"]

    assert isinstance(result, TrainResult)
    assert result.stopped is False and result.epochs_done == 2 and result.seconds > 0 and result.images_per_s > 0
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.history[1]["test_total"] == ends[1].test_loss["total"]
    assert result.history[0]["train_total"] == pytest.approx(ends[0].train_loss["total"])
    assert not model.training  # left in eval mode, ready to use
    assert evaluate_loss(model, small_mnist.test_images) == pytest.approx(ends[1].test_loss)


def test_callback_returning_true_stops_mid_epoch(small_mnist):
    reports = []

    def stop_at_step_3(p):
        reports.append(p)
        return p.step == 3

    model, result = _run(small_mnist, on_progress=stop_at_step_3)
    assert result.stopped is True
    assert result.epochs_done == 0 and result.history == []
    assert len(reports) == 3  # no report after the stop

    # Stopped models differ from fully trained ones: the loop really ended.
    full, _ = _run(small_mnist)
    assert not torch.equal(model.state_dict()["decoder.conv1.weight"], full.state_dict()["decoder.conv1.weight"])


def test_callback_stop_at_epoch_end(small_mnist):
    _, result = _run(small_mnist, on_progress=lambda p: p.epoch_end and p.epoch == 1)
    assert result.stopped is True and result.epochs_done == 1 and len(result.history) == 1
    # Asking to stop after the last epoch is not a stop: the training is complete.
    model, result = _run(small_mnist, epochs=1, on_progress=lambda p: p.epoch_end)
    assert result.stopped is False and result.epochs_done == 1
    assert not model.training  # finished like any complete run: eval mode


def test_evaluate_each_epoch_off(small_mnist):
    reports = []
    _, result = _run(small_mnist, epochs=1, evaluate_each_epoch=False, on_progress=reports.append)
    assert reports[-1].epoch_end and reports[-1].test_loss is None
    assert not any(key.startswith("test_") for key in result.history[0])


def test_learning_rate_warms_up_then_anneals_and_the_loss_falls(small_mnist):
    reports: list[Progress] = []
    peak_lr = 5e-3
    _run(small_mnist, on_progress=reports.append, epochs=4, batch_size=64, lr=peak_lr, warmup=0.25)
    rates = [p.lr for p in reports if not p.epoch_end]
    assert len(rates) == 4 * 1024 // 64
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(peak_lr / WARMUP_DIVISOR)  # warm-up starts low ...
    assert max(rates) == pytest.approx(peak_lr) and peak == len(rates) // 4 - 1  # ... peaks after a quarter ...
    assert all(a < b for a, b in zip(rates[:peak], rates[1:peak + 1]))  # ... rising all the way,
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1:]))  # then only falls,
    assert rates[-1] < peak_lr / 1000  # to ~0.
    assert [p.lr for p in reports if p.epoch_end] == [rates[i * 16 - 1] for i in (1, 2, 3, 4)]
    test_losses = [p.test_loss["total"] for p in reports if p.epoch_end]
    assert all(a > b for a, b in zip(test_losses, test_losses[1:])), test_losses  # every epoch better


def test_the_recipe_is_everyones_default():
    recipe = TrainConfig()
    assert (TrainingSpec().epochs, TrainingSpec().batch_size, TrainingSpec().lr) == (
        recipe.epochs, recipe.batch_size, recipe.lr)
    train_args = build_parser().parse_args(["train"])
    assert (train_args.epochs, train_args.batch_size, train_args.lr) == (recipe.epochs, recipe.batch_size, recipe.lr)
    assert [FORM_RANGES[name].default for name in ("epochs", "batch_size", "lr")] == [
        recipe.epochs, recipe.batch_size, recipe.lr]


@pytest.mark.parametrize("kind,lr", [("vae", 1.0), ("vae", 10.0), ("ae", 10.0)])
def test_huge_learning_rate_raises_training_diverged(small_mnist, kind, lr):
    with pytest.raises(TrainingDiverged, match="loss (exploded|became)") as info:
        _run(small_mnist, kind, lr=lr)
    assert "smaller learning rate" in str(info.value)


@pytest.mark.parametrize("bad,match", [
    (dict(epochs=0), "epochs"), (dict(epochs=1.5), "epochs"), (dict(epochs=1001), "epochs"),
    (dict(batch_size=1), "batch size"), (dict(batch_size=10000), "batch size"),
    (dict(lr=0), "learning rate"), (dict(lr=-1.0), "learning rate"), (dict(lr=11.0), "learning rate"),
    (dict(lr="0.1"), "learning rate"), (dict(warmup=0), "warm-up"), (dict(warmup=1.0), "warm-up"),
])
def test_train_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_too_few_images(small_mnist):
    with pytest.raises(ValueError, match="at least 2"):
        train(_fresh(), small_mnist.select(train_size=1), TrainConfig(epochs=1))


def test_batch_larger_than_data_uses_all_of_it(small_mnist):
    reports = []
    _run(small_mnist.select(train_size=100), epochs=1, batch_size=256, on_progress=reports.append)
    assert reports[0].steps_per_epoch == 1 and reports[0].images_seen == 100


def test_evaluate_loss_is_deterministic(small_mnist):
    model = _fresh("vae").train()
    images = small_mnist.test_images[:500]
    rng_before = torch.get_rng_state()
    a = evaluate_loss(model, images, batch_size=128)
    b = evaluate_loss(model, images, batch_size=500)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random stream is untouched
    assert a["recon"] == pytest.approx(b["recon"], rel=1e-5)  # per-image sums, whatever the batching
    assert evaluate_loss(model, images, batch_size=128) == a
    assert model.training  # mode restored
    assert set(a) == {"total", "recon", "kl"} and a["total"] == pytest.approx(a["recon"] + a["kl"], rel=1e-5)
    # The VAE's sampling is real, and seeded: another seed gives another (close) value.
    other = evaluate_loss(model, images, batch_size=128, seed=1)
    assert other["total"] != a["total"] and other["total"] == pytest.approx(a["total"], rel=0.05)
    assert evaluate_loss(model, images[:0]) == {"total": 0.0, "recon": 0.0, "kl": 0.0}
