"""The checkpoints folder as a model registry, and the sidebar's picker over it."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from vae import registry
from vae.checkpoint import CHECKPOINT_DIR, default_checkpoint_path, save_checkpoint
from vae.model import ConvAE, ConvVAE


@pytest.fixture
def folder(tmp_path):
    for name in ("vae-z2.pt", "ae-z64.pt"):
        save_checkpoint(ConvVAE(2) if name.startswith("vae") else ConvAE(64), tmp_path / name,
                        {"test_loss": {"total": 123.4}, "data_source": "mnist"})
    own = save_checkpoint(ConvVAE(16), tmp_path / "vae-z16-mine.pt", {"digits": [1, 7]})
    os.utime(own, (1, 1))  # older than the next one
    save_checkpoint(ConvAE(3), tmp_path / "ae-z3-newer.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    (tmp_path / ".vae-z2.pt.123.tmp").write_bytes(b"a save in progress")
    return tmp_path


def test_scan_lists_shipped_first_then_own_newest_first_and_broken_ones_with_the_reason(folder):
    entries = registry.scan(folder)
    names = [e.path.name for e in entries]
    assert names[:2] == ["ae-z64.pt", "vae-z2.pt"]  # SHIPPED order
    assert set(names[2:]) == {"ae-z3-newer.pt", "vae-z16-mine.pt", "broken.pt"}
    assert names.index("ae-z3-newer.pt") < names.index("vae-z16-mine.pt")
    assert ".vae-z2.pt.123.tmp" not in names
    broken = next(e for e in entries if e.path.name == "broken.pt")
    assert not broken.ok and "not a PyTorch checkpoint" in broken.error and "BROKEN" in broken.label
    vae2 = next(e for e in entries if e.path.name == "vae-z2.pt")
    assert vae2.ok and vae2.shipped and vae2.label == "vae-z2 · VAE z=2 · test 123.4 · mnist"
    mine = next(e for e in entries if e.path.name == "vae-z16-mine.pt")
    assert not mine.shipped and "digits 17" in mine.label


def test_shipped_models_cannot_be_renamed_or_deleted(folder):
    with pytest.raises(PermissionError, match="shipped"):
        registry.rename(folder / "vae-z2.pt", "other")
    with pytest.raises(PermissionError, match="shipped"):
        registry.delete(folder / "ae-z64.pt")
    assert (folder / "vae-z2.pt").exists() and (folder / "ae-z64.pt").exists()


def test_rename_checks_the_name_and_never_overwrites(folder):
    with pytest.raises(ValueError, match="letters, digits"):
        registry.rename(folder / "vae-z16-mine.pt", "../escape")
    with pytest.raises(FileExistsError):
        registry.rename(folder / "vae-z16-mine.pt", "ae-z3-newer")
    with pytest.raises(FileExistsError):
        registry.rename(folder / "vae-z16-mine.pt", "vae-z2")  # a shipped name
    new = registry.rename(folder / "vae-z16-mine.pt", "ones-and-sevens.pt")
    assert new.name == "ones-and-sevens.pt" and new.exists() and not (folder / "vae-z16-mine.pt").exists()
    registry.delete(new)
    assert not new.exists()


def test_default_names_say_kind_latent_digits_time_and_are_unique(tmp_path):
    first = default_checkpoint_path("vae", 16, (7, 1), folder=tmp_path, when=0)
    assert first.name.startswith("vae-z16-d17-") and first.suffix == ".pt"
    first.write_bytes(b"taken")
    second = default_checkpoint_path("vae", 16, (7, 1), folder=tmp_path, when=0)
    assert second != first and not second.exists()
    assert default_checkpoint_path("ae", 3, None, folder=tmp_path).name.startswith("ae-z3-2")


@pytest.mark.slow
def test_a_broken_checkpoint_is_listed_with_its_reason_and_the_others_keep_working(app_environment):
    broken = CHECKPOINT_DIR / "zz-broken-by-test.pt"
    broken.write_bytes(b"\x80\x04garbage")
    try:
        at = AppTest.from_file(str(CHECKPOINT_DIR.parent / "app.py"), default_timeout=120).run()
        assert not at.exception
        warnings = [w.value for w in at.sidebar.warning]
        assert any("zz-broken-by-test.pt" in w and "cannot be used" in w for w in warnings)
        picker = at.sidebar.selectbox[0]
        assert picker.value.endswith("vae-z64.pt")
        assert not any(str(broken) == option for option in picker.options)
    finally:
        broken.unlink()
