"""The checkpoints folder as a model registry, and the sidebar's picker over it."""
from __future__ import annotations

import os
import sys

import pytest
from streamlit.testing.v1 import AppTest

from studio import navigation
from vae.checkpoint import checkpoint_dir, default_checkpoint_path, save_checkpoint
from vae.model import ConvAE, ConvVAE
from vae.server import registry
from vae.server.limits import LIMITS


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
    assert vae2.ok and vae2.shipped and vae2.label == "vae-z2 · VAE z=2 · test loss 123.4 · all digits · mnist"
    mine = next(e for e in entries if e.path.name == "vae-z16-mine.pt")
    assert not mine.shipped and "digits 1, 7" in mine.label


TOKEN, OTHER_TOKEN = "visitor-token-aaaaaaaa", "visitor-token-bbbbbbbb"
MINE, THEIRS = registry.owner_key(TOKEN), registry.owner_key(OTHER_TOKEN)


@pytest.fixture
def owned_folder(folder):
    """The folder above plus one model of each visitor."""
    save_checkpoint(ConvVAE(2), folder / "mine.pt", {"owner": MINE})
    save_checkpoint(ConvVAE(2), folder / "theirs.pt", {"owner": THEIRS})
    return folder


def test_shipped_models_cannot_be_renamed_or_deleted_even_with_a_forged_owner(owned_folder):
    save_checkpoint(ConvVAE(2), owned_folder / "vae-z2.pt", {"owner": MINE})  # a shipped name claiming an owner
    with pytest.raises(PermissionError, match="shipped"):
        registry.rename("vae-z2.pt", "other", MINE, owned_folder)
    with pytest.raises(PermissionError, match="shipped"):
        registry.delete("ae-z64.pt", MINE, owned_folder)
    assert (owned_folder / "vae-z2.pt").exists() and (owned_folder / "ae-z64.pt").exists()


def test_only_the_owner_may_rename_or_delete_and_models_without_an_owner_are_nobodys(owned_folder):
    for name, key in (("theirs.pt", MINE), ("mine.pt", THEIRS), ("mine.pt", None), ("vae-z16-mine.pt", MINE)):
        with pytest.raises(PermissionError, match="someone else"):
            registry.delete(name, key, owned_folder)
        with pytest.raises(PermissionError, match="someone else"):
            registry.rename(name, "taken-over", key, owned_folder)
    assert {p.name for p in owned_folder.glob("*.pt")} >= {"mine.pt", "theirs.pt", "vae-z16-mine.pt"}
    entries = registry.scan(owned_folder)
    assert [e.path.name for e in registry.owned(entries, MINE)] == ["mine.pt"]
    assert [e.path.name for e in registry.owned(entries, THEIRS)] == ["theirs.pt"]
    assert registry.owned(entries, None) == []


@pytest.mark.parametrize("forged", [
    "/etc/passwd", "../outside.pt", "sub/dir.pt", "", None, 7, "mine", "mine.pt/..", "mine.pt\x00.txt",
    "vae-z2 · VAE z=2 · test 123.4 · mnist",  # a display label sent back as a value
])
def test_a_forged_name_never_reaches_the_filesystem(owned_folder, tmp_path_factory, forged):
    outside = tmp_path_factory.mktemp("outside") / "outside.pt"
    save_checkpoint(ConvVAE(2), outside, {"owner": MINE})
    before = sorted(p.name for p in owned_folder.iterdir())
    with pytest.raises(PermissionError):
        registry.delete(forged, MINE, owned_folder)
    with pytest.raises(PermissionError):
        registry.rename(forged, "stolen", MINE, owned_folder)
    assert outside.exists() and sorted(p.name for p in owned_folder.iterdir()) == before


def test_a_link_to_a_file_outside_the_folder_is_refused(owned_folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "victim.pt"
    save_checkpoint(ConvVAE(2), outside, {"owner": MINE})
    (owned_folder / "link.pt").symlink_to(outside)
    with pytest.raises(PermissionError, match="not a checkpoint in"):
        registry.delete("link.pt", MINE, owned_folder)
    assert outside.exists()


def test_rename_checks_the_name_and_never_overwrites(owned_folder):
    with pytest.raises(ValueError, match="letters, digits"):
        registry.rename("mine.pt", "../escape", MINE, owned_folder)
    with pytest.raises(FileExistsError):
        registry.rename("mine.pt", "ae-z3-newer", MINE, owned_folder)
    with pytest.raises(FileExistsError):
        registry.rename("mine.pt", "vae-z2", MINE, owned_folder)  # a shipped name
    new = registry.rename("mine.pt", "ones-and-sevens.pt", MINE, owned_folder)
    assert new.name == "ones-and-sevens.pt" and new.exists() and not (owned_folder / "mine.pt").exists()
    registry.delete(new.name, MINE, owned_folder)
    assert not new.exists()


def test_a_new_name_may_have_80_characters_and_not_81(owned_folder):
    with pytest.raises(ValueError, match="at most 80"):
        registry.rename("mine.pt", "a" * 81, MINE, owned_folder)
    assert registry.rename("mine.pt", "a" * 80, MINE, owned_folder).name == "a" * 80 + ".pt"


def test_tokens_are_random_and_only_their_hash_is_stored():
    first, second = registry.new_token(), registry.new_token()
    assert first != second and registry.valid_token(first) and registry.valid_token(second)
    assert MINE != THEIRS and TOKEN not in MINE and len(MINE) == 32
    for bad in (None, "", "short", "x" * 65, "has space in it!!", "../../etc/passwd////"):
        assert not registry.valid_token(bad)
        with pytest.raises(ValueError):
            registry.owner_key(bad)


def nested(depth: int) -> list:
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_metadata_is_measured_without_recursion_and_within_its_limits():
    assert registry.metadata_problem({"history": [{"epoch": e, "total": 1.0} for e in range(1000)]}) is None
    assert "nested" in registry.metadata_problem({"a": nested(200_000)})  # far past Python's recursion limit
    assert registry.metadata_problem({"a": nested(LIMITS.metadata_depth - 1)}) is None
    assert "nested" in registry.metadata_problem({"a": nested(LIMITS.metadata_depth)})


def test_bad_metadata_architecture_or_weights_are_listed_as_broken_with_the_reason(tmp_path):
    import torch

    from vae.checkpoint import FORMAT

    good = ConvVAE(2).state_dict()
    nan = {k: v.clone() for k, v in good.items()}
    nan["decoder.conv1.weight"][0, 0, 0, 0] = float("nan")
    payloads = {  # name → (payload, words of the reason)
        "digits-5": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"digits": 5}}, "digits"),
        "digits-12": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"digits": [1, 12]}}, "digits"),
        "kind-7": ({"kind": 7, "latent_dim": 2, "state_dict": good, "metadata": {}}, "unknown model"),
        "huge-latent": ({"kind": "vae", "latent_dim": 10**9, "state_dict": good, "metadata": {}}, "unknown model"),
        "latent-mismatch": ({"kind": "vae", "latent_dim": 3, "state_dict": good, "metadata": {}}, "does not match"),
        "other-net": ({"kind": "vae", "latent_dim": 2, "state_dict": {"w": torch.zeros(3)}, "metadata": {}},
                      "does not match"),
        "nan-weights": ({"kind": "vae", "latent_dim": 2, "state_dict": nan, "metadata": {}}, "NaN or infinite"),
        "loss-text": ({"kind": "vae", "latent_dim": 2, "state_dict": good,
                       "metadata": {"test_loss": {"total": "low"}}}, "test_loss"),
        "owner-forged": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"owner": "../x"}}, "owner"),
        "spot-level-nan": ({"kind": "vae", "latent_dim": 2, "state_dict": good,
                            "metadata": {"spot_level": float("nan")}}, "spot_level"),
        "spot-level-text": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"spot_level": "0.5"}},
                            "spot_level"),
        "metadata-list": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": [1, 2]}, "metadata"),
        "deep-list": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"notes": nested(5000)}},
                      "nested more than"),
        "deep-digits": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"digits": nested(5000)}},
                        "digits"),
        "big-field": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"notes": "x" * 300_000}},
                      "larger than"),
        "many-items": ({"kind": "vae", "latent_dim": 2, "state_dict": good, "metadata": {"h": [0.5] * 40_000}},
                       "larger than"),
    }
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)  # torch.save pickles recursively: a hostile writer raises the limit too
    try:
        for name, (payload, _) in payloads.items():
            torch.save({"format": FORMAT, "beta": 1.0, **payload}, tmp_path / f"{name}.pt")
    finally:
        sys.setrecursionlimit(limit)
    entries = {e.path.stem: e for e in registry.scan(tmp_path)}
    for name, (_, words) in payloads.items():
        entry = entries[name]
        assert not entry.ok and words in entry.error, (name, entry.error)
        assert entry.label == f"{name}.pt · BROKEN" and entry.owner is None and not entry.owned_by(MINE)


def test_stale_temp_files_of_dead_saves_are_removed_when_the_registry_scans(folder):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    stale = folder / f".vae-z2-x.pt.{dead_pid}.abcd1234.tmp"
    live = folder / f".vae-z2-y.pt.{os.getpid()}.abcd1234.tmp"  # a save in progress in this process
    for path in (stale, live):
        path.write_bytes(b"half a checkpoint")
    registry.scan(folder)
    assert not stale.exists() and live.exists()


def test_default_names_say_kind_latent_digits_time_and_are_unique(tmp_path):
    first = default_checkpoint_path("vae", 16, (7, 1), folder=tmp_path, when=0)
    assert first.name.startswith("vae-z16-d17-") and first.suffix == ".pt"
    first.write_bytes(b"taken")
    second = default_checkpoint_path("vae", 16, (7, 1), folder=tmp_path, when=0)
    assert second != first and not second.exists()
    assert default_checkpoint_path("ae", 3, None, folder=tmp_path).name.startswith("ae-z3-2")


@pytest.mark.slow
def test_a_broken_checkpoint_is_listed_with_its_reason_and_the_others_keep_working(app_environment):
    broken = checkpoint_dir() / "zz-broken-by-test.pt"
    broken.write_bytes(b"\x80\x04garbage")
    try:
        at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=120).run()
        assert not at.exception
        warnings = [w.value for w in at.sidebar.warning]
        assert any("zz-broken-by-test.pt" in w and "cannot be used" in w for w in warnings)
        picker = at.sidebar.selectbox[0]
        assert picker.value.endswith("vae-z64.pt")
        assert not any(str(broken) == option for option in picker.options)
    finally:
        broken.unlink()


@pytest.mark.slow
def test_a_checkpoint_with_bad_metadata_breaks_no_page(app_environment):
    """A loadable file whose metadata says digits=5 raised in the picker's label on every page."""
    bad = checkpoint_dir() / "zz-bad-metadata-by-test.pt"
    save_checkpoint(ConvVAE(2), bad, {"digits": 5, "test_loss": {"total": 1.0}})
    try:
        at = AppTest.from_file(navigation.MAIN_SCRIPT, default_timeout=120).run()
        assert not at.exception
        assert any("zz-bad-metadata-by-test.pt" in w.value and "digits" in w.value for w in at.sidebar.warning)
        assert str(bad) not in at.sidebar.selectbox[0].options
    finally:
        bad.unlink()


def test_two_tabs_racing_rename_and_delete_always_report_what_happened(owned_folder):
    """Before, 4 rounds in 300 misreported: a rename "failed" that happened, a delete "succeeded" on a model that
    survived renamed. Each round: one tab renames mine.pt while another deletes it; exactly one wins, and the
    other says the model is gone."""
    import threading

    original = (owned_folder / "mine.pt").read_bytes()
    for round_ in range(300):
        (owned_folder / "mine.pt").write_bytes(original)
        outcome = {}
        start = threading.Barrier(2)

        def act(action, start=start, round_=round_, outcome=outcome):
            start.wait()
            try:
                if action == "rename":
                    registry.rename("mine.pt", f"renamed-{round_}", MINE, owned_folder)
                else:
                    registry.delete("mine.pt", MINE, owned_folder)
                outcome[action] = "done"
            except registry.Gone as exc:
                outcome[action] = str(exc)

        threads = [threading.Thread(target=act, args=(a,)) for a in ("rename", "delete")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        renamed = owned_folder / f"renamed-{round_}.pt"
        assert sorted(outcome.values()).count("done") == 1, outcome
        assert not (owned_folder / "mine.pt").exists()
        if outcome["rename"] == "done":
            assert renamed.exists() and "no longer there" in outcome["delete"]
            renamed.unlink()
        else:
            assert not renamed.exists() and "no longer there" in outcome["rename"]


def test_what_a_visitor_reads_when_a_change_fails_holds_no_errno_or_path():
    assert registry.for_visitors(registry.Gone("x.pt is no longer there")) == "x.pt is no longer there"
    failure = PermissionError(13, "Permission denied", "/srv/secret/checkpoints/x.pt")
    assert registry.for_visitors(failure) == "the server could not change the file (permission denied); nothing was changed"


def test_the_sidebars_listing_sees_a_replaced_one_class_model(tmp_path):
    """A replaced file inside one-class/ was served from the old listing, then raised CheckpointError."""
    import shutil

    from studio import caches

    store = tmp_path / "store"
    (store / "one-class").mkdir(parents=True)
    shutil.copy(checkpoint_dir() / "one-class" / "vae-z64-d3.pt", store / "one-class" / "vae-z64-d3.pt")
    assert [e.ok for e in caches.checkpoint_entries(store)] == [True]
    (store / "one-class" / "vae-z64-d3.pt").write_bytes(b"not a checkpoint any more")
    [entry] = caches.checkpoint_entries(store)
    assert not entry.ok and "vae-z64-d3.pt" in entry.error
