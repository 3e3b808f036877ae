"""Checkpoints: a dict of plain values and tensors, written atomically, read with weights_only=True.

Layout: {"format": FORMAT, "kind", "latent_dim", "beta", "state_dict": {name: tensor}, "metadata": {...}}
Loading never unpickles arbitrary objects, so a malicious file cannot run code.
"""
from __future__ import annotations

import os
import time
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from .model import ConvAE, ConvVAE, build_model

FORMAT = "conv-vae-studio/1"
SUFFIX = ".pt"


# Read once: os.umask can only be read by setting it, which would race with threads saving at once.
_UMASK = os.umask(0)
os.umask(_UMASK)


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
    """Write atomically: a unique temp file in the same folder, fsync, then os.replace.

    overwrite=False never replaces an existing file: FileExistsError instead (two runs saving at once).
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "kind": model.kind,
        "latent_dim": model.latent_dim,
        "beta": float(model.config.beta),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": _plain(metadata or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes the file private; a checkpoint is not
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic like os.replace, but fails if the name was taken meanwhile
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
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


def load_checkpoint(path: str | os.PathLike) -> tuple[ConvAE | ConvVAE, dict]:
    """(model in eval mode, metadata). Raises CheckpointError for any bad file."""
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
        raise CheckpointError(f"{name} does not match the report's {payload['kind'].upper()} architecture "
                              f"({first[0] if first else type(exc).__name__} …)") from None
    model.eval()
    metadata = dict(payload.get("metadata") or {})
    metadata.update(kind=model.kind, latent_dim=model.latent_dim, beta=model.config.beta)
    return model, metadata


def read_metadata(path: str | os.PathLike) -> dict:
    """Metadata without building the model (for listing checkpoints)."""
    return load_checkpoint(path)[1]


CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def default_checkpoint_path(kind: str, latent_dim: int, digits=None, folder: str | os.PathLike | None = None,
                            when: float | None = None) -> Path:
    """checkpoints/vae-z16-d017-20261127-031500.pt: kind, latent size, digits (if not all), time."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    digits_part = f"-d{''.join(str(d) for d in sorted(digits))}" if digits else ""
    folder = Path(folder) if folder is not None else CHECKPOINT_DIR
    path = folder / f"{kind}-z{latent_dim}{digits_part}-{stamp}{SUFFIX}"
    n = 2
    while path.exists():  # two trainings finishing in the same second
        path = folder / f"{kind}-z{latent_dim}{digits_part}-{stamp}-{n}{SUFFIX}"
        n += 1
    return path
