"""Checkpoints: exact round trips, atomic writes, and a clear CheckpointError for every bad file —
including pickles built to run code, which must be refused without running anything."""
from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch
from torch import nn

from vae.checkpoint import FORMAT, CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from vae.data import to_float
from vae.model import ConvAE, ConvVAE


def _trained_ish(kind: str, latent: int = 3):
    """A model whose BatchNorm running stats and weights are not the defaults."""
    torch.manual_seed(0)
    model = ConvAE(latent) if kind == "ae" else ConvVAE(latent, beta=0.5)
    model.train()
    with torch.no_grad():
        model.loss(torch.rand(16, 1, 28, 28))  # moves the running means / variances
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def images(mnist):
    return to_float(mnist.test_images[:32])


@pytest.fixture
def vae_file(tmp_path):
    return save_checkpoint(_trained_ish("vae"), tmp_path / "good.pt", {"epochs": 1})


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_round_trip_gives_identical_outputs(kind, tmp_path, images):
    model = _trained_ish(kind)
    path = save_checkpoint(model, tmp_path / f"{kind}.pt")
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model)
    assert not loaded.training  # eval mode: BatchNorm uses the saved running stats
    assert loaded.kind == kind and loaded.latent_dim == 3 and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded.embed(images), model.embed(images))
        assert torch.equal(loaded.reconstruct(images), model.reconstruct(images))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    # A fresh model of the same shape gives different outputs: the weights really came from the file.
    with torch.no_grad():
        assert not torch.equal((ConvAE(3) if kind == "ae" else ConvVAE(3)).eval().embed(images), model.embed(images))


def test_metadata_round_trips(tmp_path):
    metadata = {
        "epochs": 3, "lr": 0.01, "digits": [0, 1, 7], "data_source": "mnist", "note": None, "flag": True,
        "test_loss": {"total": 101.25, "recon": 90.5, "kl": 10.75},
        "history": [{"epoch": 1, "train_total": 150.0}, {"epoch": 2, "train_total": 120.0}],
        "shape": (28, 28),
    }
    path = save_checkpoint(_trained_ish("vae"), tmp_path / "m.pt", metadata)
    _, meta = load_checkpoint(path)
    expected = {**metadata, "shape": [28, 28], "kind": "vae", "latent_dim": 3, "beta": 0.5}
    assert meta == expected
    assert read_metadata(path) == expected


@pytest.mark.parametrize("bad", [object(), {"x": object()}, [1, {2}], {"t": torch.zeros(2)}, nn.Linear(1, 1)],
                         ids=["object", "nested-object", "set", "tensor", "module"])
def test_non_plain_metadata_is_rejected_at_save_time(tmp_path, bad):
    with pytest.raises(TypeError, match="plain"):
        save_checkpoint(ConvAE(2), tmp_path / "x.pt", {"bad": bad})
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temp file


def test_str_subclass_metadata_is_stored_as_plain_str(tmp_path):
    """torch.__version__ is a str subclass: pickled as its class it would not load with weights_only."""
    path = save_checkpoint(ConvAE(2), tmp_path / "v.pt", {"versions": {"torch": torch.__version__}})
    value = load_checkpoint(path)[1]["versions"]["torch"]
    assert type(value) is str and value == str(torch.__version__)


def test_save_is_atomic_and_replaces(tmp_path, images):
    folder = tmp_path / "nested" / "dir"
    path = folder / "model.pt"
    with pytest.raises(FileNotFoundError):  # a mistyped folder is an error, not a new folder
        save_checkpoint(_trained_ish("ae"), path, {"n": 1})
    assert not (tmp_path / "nested").exists()
    folder.mkdir(parents=True)
    save_checkpoint(_trained_ish("ae"), path, {"n": 1})
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]

    save_checkpoint(_trained_ish("vae"), path, {"n": 2})  # over the existing file
    assert sorted(p.name for p in folder.iterdir()) == ["model.pt"]  # no temp file left behind
    loaded, meta = load_checkpoint(path)
    assert loaded.kind == "vae" and meta["n"] == 2
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


def test_failed_save_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    """A crash half-way through writing (disk full, killed) must not damage the existing checkpoint."""
    path = save_checkpoint(_trained_ish("ae"), tmp_path / "model.pt", {"n": 1})
    before = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vae.checkpoint.torch.save", crash)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(_trained_ish("vae"), path, {"n": 2})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert path.read_bytes() == before
    assert load_checkpoint(path)[1]["n"] == 1


# --- bad files: each one a CheckpointError with its own clear message -------------------------------

def _message(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message  # one clean line for the CLI and the app
    return message


def test_missing_file(tmp_path):
    assert _message(tmp_path / "nope.pt") == f"no checkpoint file at {tmp_path / 'nope.pt'}"
    assert _message(tmp_path).startswith("no checkpoint file")  # a folder is not a file either


def test_truncated_file(tmp_path, vae_file):
    data = vae_file.read_bytes()
    bad = tmp_path / "half.pt"
    bad.write_bytes(data[: len(data) // 2])
    assert _message(bad).startswith("half.pt is truncated or not a PyTorch checkpoint")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert _message(empty).startswith("empty.pt is truncated or not a PyTorch checkpoint")


def test_random_bytes(tmp_path):
    bad = tmp_path / "noise.pt"
    bad.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(3),
                                        dtype=torch.uint8).tolist()))
    message = _message(bad)
    assert message.startswith("noise.pt is") and "not a PyTorch checkpoint" in message
    assert "run code" not in message  # noise is not an attack; saying so would mislead
    text = tmp_path / "notes.pt"
    text.write_text("just some text, not a model\n")
    assert "not a PyTorch checkpoint" in _message(text)


def test_foreign_architecture_with_our_format_key(tmp_path):
    other = ConvVAE(4).state_dict()  # right keys, wrong shapes for latent 3
    torch.save({"format": FORMAT, "kind": "vae", "latent_dim": 3, "beta": 1.0, "state_dict": other, "metadata": {}},
               tmp_path / "shapes.pt")
    message = _message(tmp_path / "shapes.pt")
    assert message.startswith("shapes.pt does not match the report's VAE architecture")

    ae_weights = ConvAE(3).state_dict()  # an AE's weights labelled as a VAE: missing heads
    torch.save({"format": FORMAT, "kind": "vae", "latent_dim": 3, "state_dict": ae_weights}, tmp_path / "keys.pt")
    assert _message(tmp_path / "keys.pt").startswith("keys.pt does not match the report's VAE architecture")

    torch.save({"format": FORMAT, "kind": "gan", "latent_dim": 3, "state_dict": {}}, tmp_path / "kind.pt")
    assert _message(tmp_path / "kind.pt").startswith("kind.pt describes an unknown model")


def test_plain_state_dict_of_another_module(tmp_path):
    torch.save(nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10)).state_dict(), tmp_path / "mlp.pt")
    assert _message(tmp_path / "mlp.pt") == "mlp.pt is not a checkpoint of this project (expected format conv-vae-studio/1)"
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    assert _message(tmp_path / "list.pt").startswith("list.pt is not a checkpoint of this project")


class _Payload:
    """Unpickling this creates the marker file: proof that code ran."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


class _ShellPayload:
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload_class", [_Payload, _ShellPayload], ids=["open", "os.system"])
@pytest.mark.parametrize("writer", ["pickle.dump", "pickle.dump-protocol2", "torch.save", "torch.save-in-metadata"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload_class, writer):
    marker = tmp_path / "PWNED"
    payload_class.marker = marker
    evil = payload_class()
    # The payload works: plain unpickling would run it.
    pickle.loads(pickle.dumps(evil))
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pt"
    if writer == "pickle.dump":
        with open(path, "wb") as f:
            pickle.dump(evil, f)
    elif writer == "pickle.dump-protocol2":
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)
    elif writer == "torch.save":
        torch.save(evil, path)
    else:
        torch.save({"format": FORMAT, "kind": "vae", "latent_dim": 3, "state_dict": ConvVAE(3).state_dict(),
                    "metadata": {"note": evil}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a warning on stderr: the CheckpointError says it all
        message = _message(path)
    assert message.startswith("evil.pt holds Python objects other than tensors and plain values")
    assert "could run code" in message
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        read_metadata(path)
    assert not marker.exists()


def test_bad_file_messages_are_distinct(tmp_path, vae_file):
    """Missing, truncated, noise, foreign, wrong shapes and malicious: six different first clauses."""
    (tmp_path / "t.pt").write_bytes(vae_file.read_bytes()[:1000])
    (tmp_path / "r.pt").write_bytes(bytes(range(7, 256)) * 8)
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "f.pt")
    torch.save({"format": FORMAT, "kind": "ae", "latent_dim": 5, "state_dict": ConvAE(2).state_dict()}, tmp_path / "s.pt")
    _Payload.marker = tmp_path / "PWNED"
    torch.save(_Payload(), tmp_path / "e.pt")
    messages = [_message(tmp_path / n).split(" (")[0].split(" ", 1)[1] for n in ["m.pt", "t.pt", "r.pt", "f.pt", "s.pt", "e.pt"]]
    assert len(set(messages)) == 6, messages
    assert not (tmp_path / "PWNED").exists()


def test_a_write_check_killed_midway_leaves_a_temp_file_the_next_scan_removes(tmp_path, monkeypatch):
    import subprocess
    import sys

    from vae.checkpoint import check_writable_folder, clean_stale_temp_files

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    probe_names = []
    real_close = os.close

    def spy_close(fd):  # the probe's name, as check_writable_folder makes it
        probe_names.extend(p.name for p in tmp_path.iterdir())
        real_close(fd)

    monkeypatch.setattr(os, "close", spy_close)
    check_writable_folder(tmp_path)
    monkeypatch.undo()
    [probe] = probe_names
    left = tmp_path / probe.replace(f".{os.getpid()}.", f".{dead}.")  # as if that process had been killed
    left.write_bytes(b"")
    assert clean_stale_temp_files(tmp_path) == [left] and not left.exists()


def test_a_nearly_full_disk_is_found_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from vae.training_run import TrainingSpec, run_training

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 3_000_000, 3_000_000))
    with pytest.raises(OSError, match="3.0 MB free; training needs 32 MB"):
        run_training(TrainingSpec(kind="vae", latent_dim=2, epochs=1), folder=tmp_path, data=object())
