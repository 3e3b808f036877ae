"""Checkpoints: a dict of plain values and tensors, written atomically, read with weights_only=True.

Layout: {"format": FORMAT, "kind", "latent_dim", "beta", "state_dict": {name: tensor}, "metadata": {...}}
Loading never unpickles arbitrary objects, so a malicious file cannot run code.
"""
from __future__ import annotations

import math
import os
import pickle
import re
import reprlib
import shutil
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import torch

from .files import TEMP_SUFFIX, write_atomically
from .model import ConvAE, ConvVAE, build_model

FORMAT = "conv-vae-studio/1"
SUFFIX = ".pt"
STALE_TEMP_AGE_S = 3600.0  # a temp file this old is stale whoever wrote it
OWNER_PATTERN = re.compile(r"[0-9a-f]{8,64}")  # registry.owner_key's form, as stored in the metadata (fullmatch)
FREE_SPACE_NEEDED = 32_000_000  # bytes: the report's networks save in under 2 MB; the rest is headroom
_TEMP_NAME = re.compile(r"^\..+\.pt\.(\d+)\.[^.]+\.tmp$")  # .NAME.pt.PID.RANDOM.tmp


class CheckpointError(ValueError):
    """A checkpoint file that is missing, damaged, unsafe or of another architecture."""


def _plain(value):
    """Metadata must survive weights_only loading: keep only primitives, lists and dicts."""
    if value is None:
        return None
    for plain_type in (bool, int, float, str):  # exact types: subclasses (torch's version string) pickle as classes
        if isinstance(value, plain_type):
            return plain_type(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    raise TypeError(f"checkpoint metadata must be plain values, got {type(value).__name__}")


def save_checkpoint(model: ConvAE | ConvVAE, path: str | os.PathLike, metadata: dict | None = None,
                    overwrite: bool = True) -> Path:
    """Write atomically (vae/files.py). overwrite=False never replaces an existing file: FileExistsError
    instead (two runs saving at once). The folder must exist: a mistyped destination is an error."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "kind": model.kind,
        "latent_dim": model.latent_dim,
        "beta": float(model.config.beta),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": _plain(metadata or {}),
    }
    write_atomically(path, lambda f: torch.save(payload, f), overwrite=overwrite, make_folder=False)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw payload, checked to be one of ours. Raises CheckpointError with one clear sentence."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles; the CheckpointError says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain values; nothing in the file ran.
        # torch raises the same error for bytes that are no pickle at all: only a zip (torch.save)
        # or a pickle (protocol 2+ starts with PROTO, 0x80) can hold objects.
        with open(path, "rb") as f:
            head = f.read(2)
        if not (zipfile.is_zipfile(path) or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5)):
            raise CheckpointError(f"{path.name} is not a PyTorch checkpoint (unreadable data)") from None
        # torch's first line is generic boilerplate; its reason follows "WeightsUnpickler error:".
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        detail = reason.group(1).split(". ")[0].rstrip(".") if reason else "not tensors and plain values only"
        raise CheckpointError(f"{path.name} holds Python objects other than tensors and plain values; "
                              f"refused to load it, since it could run code ({detail})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{path.name} is truncated or not a PyTorch checkpoint "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a checkpoint of this project (expected format {FORMAT})")
    return payload


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[ConvAE | ConvVAE, dict]:
    """(model in eval mode on `device`, metadata). Raises CheckpointError for any bad file."""
    payload = read_checkpoint(path)
    name = Path(path).name
    try:
        model = build_model(payload["kind"], int(payload["latent_dim"]), float(payload.get("beta", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{name} describes an unknown model ({exc})") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()
        kind = str(payload["kind"])
        architecture = f"the report's {kind.upper()}" if kind in ("ae", "vae") else f"the {kind.upper()} baseline's"
        raise CheckpointError(f"{name} does not match {architecture} architecture "
                              f"({first[0] if first else type(exc).__name__} …)") from None
    bad = next((key for key, value in payload["state_dict"].items()
                if value.is_floating_point() and not bool(torch.isfinite(value).all())), None)
    if bad is not None:
        raise CheckpointError(f"{name} has NaN or infinite weights ({bad})")
    model.to(device).use_device_kernels(device).eval()
    metadata = validate_metadata(payload.get("metadata"), name)
    metadata.update(kind=model.kind, latent_dim=model.latent_dim, beta=model.config.beta)
    model.spot_level = metadata.get("spot_level")  # vae.corrected_spots's default level; None if not calibrated
    return model, metadata


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Metadata keys the app reads, and what each must be. Anything else is kept as it is.
_METADATA_RULES = {
    "digits": ("a list of distinct digits 0-9, or null",
               lambda v: v is None or (isinstance(v, list) and 0 < len(v) <= 10
                                       and all(type(d) is int and 0 <= d <= 9 for d in v) and len(set(v)) == len(v))),
    "epochs": ("a whole number of epochs", lambda v: type(v) is int and 0 <= v <= 100_000),
    "train_images": ("a whole number of images", lambda v: type(v) is int and 0 <= v <= 10_000_000),
    "data_source": ("a short text", lambda v: isinstance(v, str) and len(v) <= 100),
    "owner": ("an owner key", lambda v: isinstance(v, str) and OWNER_PATTERN.fullmatch(v) is not None),
    "origin": ("an origin key", lambda v: isinstance(v, str) and OWNER_PATTERN.fullmatch(v) is not None),
    "train_loss": ("losses as finite numbers", lambda v: isinstance(v, dict) and all(map(_finite_number, v.values()))),
    "test_loss": ("losses as finite numbers", lambda v: isinstance(v, dict) and all(map(_finite_number, v.values()))),
    "spot_level": ("a level between 0 and 1", lambda v: _finite_number(v) and 0 <= v <= 1),
}


def validate_metadata(metadata, name: str = "checkpoint") -> dict:
    """A copy of the metadata, or CheckpointError naming the first field that is not what the app expects."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{name} has metadata of the wrong type ({type(metadata).__name__}, not a dict)")
    for key, (expected, ok) in _METADATA_RULES.items():
        if key in metadata and not ok(metadata[key]):
            # reprlib: a short repr whatever the value holds (a plain repr of a list 5,000 deep never returns)
            raise CheckpointError(f"{name} has bad metadata: {key} must be {expected}, got {reprlib.repr(metadata[key])}")
    return dict(metadata)


def clean_stale_temp_files(folder: str | os.PathLike, older_than_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Remove save_checkpoint's temp files left by a process that died mid-save (kill -9, power loss).

    A temp file is stale when the process named in it is gone, or when it is older than `older_than_s`
    whoever wrote it; a young one of a living process is a save in progress and stays.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(f".*{SUFFIX}.*{TEMP_SUFFIX}"):
        match = _TEMP_NAME.match(tmp.name)
        try:
            if not tmp.is_file() or tmp.is_symlink():
                continue
            if (match is None or _process_alive(int(match.group(1)))) and time.time() - tmp.stat().st_mtime <= older_than_s:
                continue
            tmp.unlink()
            removed.append(tmp)
        except OSError:  # gone meanwhile, or not ours to remove: leave it
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except (OverflowError, ValueError):
        return False
    return True


def check_writable_folder(folder: str | os.PathLike) -> Path:
    """The folder, if a checkpoint can be written there; else OSError saying why, before any training."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"the folder {folder} does not exist (create it first)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    try:  # a real write: os.access says yes to root even on a read-only file system. Named like a save's
        # temp file (.NAME.pt.PID.RANDOM.tmp), so one left by a kill right here is removed as stale.
        fd, probe = tempfile.mkstemp(prefix=f".write-check{SUFFIX}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write checkpoints in {folder}: {exc.strerror or exc}") from None
    check_free_space(folder)
    return folder


def check_free_space(folder: str | os.PathLike, needed: int = FREE_SPACE_NEEDED) -> None:
    """OSError, before any training, if the disk holding `folder` has less than `needed` bytes free: a full
    disk would otherwise be found only when the trained model is saved."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(f"the disk holding {folder} has {free / 1e6:.1f} MB free; training needs "
                      f"{needed / 1e6:.0f} MB to save its model safely: free some space first")


def read_metadata(path: str | os.PathLike) -> dict:
    """Metadata without building the model (for listing checkpoints)."""
    return load_checkpoint(path)[1]


# Trained on all 60,000 MNIST training images and committed with the project; never overwritten.
SHIPPED = ("vae-z64.pt", "ae-z64.pt", "vae-z3.pt", "ae-z3.pt", "vae-z2.pt", "ae-z2.pt",
           "fc-vae-z64.pt", "fc-ae-z64.pt")  # the last two: the fully-connected baseline (vae/fc_model.py)
ONE_CLASS_FOLDER = "one-class"  # the one-class benchmark's models (vae/benchmark.py), shipped like SHIPPED
REPO_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
CHECKPOINTS_ENV = "STUDIO_CHECKPOINTS"  # the one setting that moves the whole model store


def checkpoint_dir() -> Path:
    """The checkpoints folder, read at call time: $STUDIO_CHECKPOINTS if set, else the repo's checkpoints/.

    It holds everything the app serves: the shipped models, one-class/, benchmark/, precomputed/ and the
    visitors' models. A deployment that moves it copies the repo's folder there first."""
    return Path(os.environ.get(CHECKPOINTS_ENV) or REPO_CHECKPOINTS)


def is_shipped(path: str | os.PathLike) -> bool:
    """Whether `path` names a model that ships with the project (one of SHIPPED, or one in one-class/), in the
    model store or in the repo's own checkpoints/: those are never overwritten."""
    path = Path(path).resolve()
    for store in {checkpoint_dir().resolve(), REPO_CHECKPOINTS.resolve()}:
        if (path.parent == store and path.name in SHIPPED) or path.parent == store / ONE_CLASS_FOLDER:
            return True
    return False


def default_checkpoint_path(kind: str, latent_dim: int, digits=None, folder: str | os.PathLike | None = None,
                            when: float | None = None) -> Path:
    """checkpoints/vae-z16-d017-20261127-031500.pt: kind, latent size, digits (if not all), time."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    digits_part = f"-d{''.join(str(d) for d in sorted(digits))}" if digits else ""
    folder = Path(folder) if folder is not None else checkpoint_dir()
    path = folder / f"{kind}-z{latent_dim}{digits_part}-{stamp}{SUFFIX}"
    n = 2
    while path.exists():  # two trainings finishing in the same second
        path = folder / f"{kind}-z{latent_dim}{digits_part}-{stamp}-{n}{SUFFIX}"
        n += 1
    return path
