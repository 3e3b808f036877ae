"""`python -m vae` as a user runs it. Good runs write a loadable checkpoint and print the losses; every bad
input gives one `error:` line on stderr and a non-zero exit.

Runs that train are subprocesses from the repo root, started together at the session's beginning
(conftest.cli_runs); the tests here wait for the results. Bad command lines, which stop before any data is
loaded, go through the same `main` in this process (a subprocess pays seconds for importing PyTorch);
one of them, and --version, also as a subprocess, to check the exit status a shell sees.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from vae.checkpoint import load_checkpoint, save_checkpoint
from vae.cli import main
from vae.model import ConvVAE
from vae.train import TrainConfig

from conftest import ROOT, start_cli

pytestmark = pytest.mark.slow  # `python -m vae` processes

CLI_BAD_ARGUMENTS = {  # name → (arguments, what the one error line must say)
    "latent-0": (["train", "--latent", "0"], "latent size must be an integer from 1 to 1024, got 0"),
    "digits-x": (["train", "--digits", "1,x"], "digits must be a comma-separated list of 0–9, got '1,x'"),
    "lr-negative": (["train", "--lr", "-1"], "learning rate must be in (0, 10], got -1.0"),
    "latent-abc": (["train", "--latent", "abc"], "argument --latent: invalid int value: 'abc'"),
    "evaluate-missing": (["evaluate", "missing.pt"], "no checkpoint file at missing.pt"),
    # the destination is checked before any data is loaded or step trained
    "out-shipped": (["train", "--out", "checkpoints/vae-z2.pt", "--force"],
                    "checkpoints/vae-z2.pt is a shipped model and is never overwritten; choose another --out"),
    "out-exists": (["train", "--out", "README.md"],
                   "README.md already exists; choose another --out, or pass --force to overwrite it"),
    "out-no-folder": (["train", "--out", "no-such-folder/x.pt"],
                      "the folder no-such-folder does not exist (create it first)"),
}
# A wrong command line exits 2; a run that fails (a missing file, a refused destination) exits 1.
RUNTIME_FAILURES = {"evaluate-missing", "out-shipped", "out-exists", "out-no-folder"}


def run_here(capsys, monkeypatch, *args) -> subprocess.CompletedProcess:
    """`python -m vae ARGS` through vae.cli.main in this process, from the repo root: status, stdout, stderr."""
    monkeypatch.chdir(ROOT)
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exit_:  # argparse: --help, --version and its own errors
        code = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "vae", *args], code, out, err)


def assert_one_error_line(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    assert proc.returncode == code, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    return lines[0]


def test_train_writes_a_loadable_checkpoint(cli_runs):
    proc, out = cli_runs["train"].result(), cli_runs["folder"] / "x.pt"
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("data: MNIST (60,000 train / 10,000 test)\n")
    assert re.search(r"epoch 1/1 \[#{20}\] 100% loss \d+\.\d\d .*\| test \d+\.\d\d", proc.stderr), proc.stderr
    assert proc.stdout.startswith(f"saved {out}: test loss ")
    assert "trained on 1,000 images" in proc.stdout
    assert not list(out.parent.glob(".x.pt.*"))  # no temp file left

    model, meta = load_checkpoint(out)
    assert (model.kind, model.latent_dim, model.config.beta) == ("vae", 3, 1.0)
    assert meta["kind"] == "vae" and meta["latent_dim"] == 3 and meta["epochs"] == 1
    assert meta["train_images"] == 1000 and meta["data_source"] == "mnist" and meta["digits"] is None
    assert meta["lr"] == TrainConfig.lr and meta["batch_size"] == TrainConfig.batch_size and meta["seed"] == 0
    assert len(meta["history"]) == 1 and meta["history"][0]["epoch"] == 1
    assert 100 < meta["test_loss"]["total"] < 550  # learned something in 3 steps, not much
    assert 0 < meta["spot_level"] <= 1 and model.spot_level == meta["spot_level"]  # calibrated on its 1,000 images
    printed = float(re.search(r"test loss (\d+\.\d\d)", proc.stdout).group(1))
    assert printed == round(meta["test_loss"]["total"], 2)


def test_evaluate_prints_losses_and_source(cli_runs, mnist_root):
    assert cli_runs["train"].result().returncode == 0
    out = cli_runs["folder"] / "x.pt"
    _, meta = load_checkpoint(out)
    ev = start_cli("evaluate", out, "--data-root", mnist_root).result()
    assert ev.returncode == 0, ev.stderr
    assert ev.stderr == ""
    lines = {line[:12].strip(): line[12:] for line in ev.stdout.splitlines()}
    assert list(lines) == ["checkpoint", "model", "data", "train loss", "test loss"], ev.stdout
    assert lines["checkpoint"] == str(out)
    assert lines["model"] == "vae, latent 3, beta 1, trained 1 epochs on mnist"
    assert lines["data"] == "mnist: MNIST (60,000 train / 10,000 test)"
    number = r"(\d+\.\d\d) nats/image \(recon (\d+\.\d\d), kl (\d+\.\d\d)\)"
    test = re.fullmatch(number, lines["test loss"])
    train = re.fullmatch(number, lines["train loss"])
    assert test and train, ev.stdout
    for i, part in enumerate(("total", "recon", "kl"), start=1):
        assert float(test.group(i)) == round(meta["test_loss"][part], 2), part
    # The train loss is over all 60,000 training images, not the 1,000 it saw: close, not equal.
    assert float(train.group(1)) != float(test.group(1))
    assert abs(float(train.group(1)) - meta["test_loss"]["total"]) < 0.1 * meta["test_loss"]["total"]


@pytest.mark.parametrize("name", list(CLI_BAD_ARGUMENTS))
def test_bad_arguments_give_one_error_line(capsys, monkeypatch, tmp_path, mnist_root, name):
    args, message = CLI_BAD_ARGUMENTS[name]
    if args[0] == "train":  # small, fast defaults first: the option under test comes last and wins
        args = ["train", "--epochs", "1", "--train-size", "50", "--data-root", mnist_root,
                "--out", tmp_path / f"{name}.pt", *args[1:]]
    shipped = {p: p.read_bytes() for p in (ROOT / "checkpoints").glob("*.pt")}
    line = assert_one_error_line(run_here(capsys, monkeypatch, *args), 1 if name in RUNTIME_FAILURES else 2)
    assert message in line, line
    assert not list(tmp_path.iterdir())
    assert {p: p.read_bytes() for p in shipped} == shipped


def test_a_shell_sees_exit_status_2_for_a_bad_command_line():
    line = assert_one_error_line(start_cli("train", "--latent", "abc").result(), 2)
    assert line == "error: argument --latent: invalid int value: 'abc' (see: python -m vae train --help)"


def test_evaluate_truncated_checkpoint(capsys, monkeypatch, tmp_path):
    good = save_checkpoint(ConvVAE(3), tmp_path / "good.pt")
    (tmp_path / "half.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    line = assert_one_error_line(run_here(capsys, monkeypatch, "evaluate", tmp_path / "half.pt"))
    assert line.startswith("error: half.pt is truncated or not a PyTorch checkpoint")


def test_train_with_huge_learning_rate_fails_and_writes_nothing(cli_runs):
    proc = cli_runs["diverge"].result()
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == "data: MNIST (60,000 train / 10,000 test)"
    # The error starts its own line, even when it interrupts a progress bar's '\r' line.
    assert re.fullmatch(r"error: loss (exploded to [\d,]+|became \S+) at epoch 1, step \d+: training stopped "
                        r"and nothing was saved; try a smaller learning rate \(now 10\)", lines[-1]), proc.stderr
    assert proc.stdout == ""
    assert not (cli_runs["bad_folder"] / "diverged.pt").exists()
    assert not list(cli_runs["bad_folder"].iterdir())  # no temp file either


def test_force_overwrites_an_existing_file_but_nothing_overwrites_a_shipped_model(cli_runs, repo_root):
    proc = cli_runs["force"].result()
    assert proc.returncode == 0, proc.stderr
    model, _ = load_checkpoint(cli_runs["folder"] / "existing.pt")
    assert (model.kind, model.latent_dim) == ("ae", 2)
    shipped = cli_runs["shipped"]  # the bytes of checkpoints/*.pt before any CLI run started
    assert "vae-z2.pt" in shipped
    now = {p.name: p.read_bytes() for p in (repo_root / "checkpoints").glob("*.pt") if p.name in shipped}
    assert now == shipped


def test_version_and_help_show_every_default(capsys, monkeypatch):
    version = start_cli("--version").result()
    assert version.returncode == 0 and re.fullmatch(r"python -m vae \d+\.\d+\.\d+\n", version.stdout)
    shown = run_here(capsys, monkeypatch, "train", "--help")
    assert shown.returncode == 0
    help_text = shown.stdout.split("options:", 1)[1]
    options = re.findall(r"^  (--[a-z-]+)", help_text, flags=re.M)
    assert len(options) >= 15
    for option in options:  # each option's help block names its default
        block = help_text.split(option, 1)[1].split("\n  --", 1)[0]
        assert "(default:" in block, option


def test_cpu_and_auto_train_the_same_model_on_a_cpu_machine(small_mnist):
    import torch

    from vae.model import build_model
    from vae.train import TrainConfig, train

    models = []
    for device in ("cpu", "auto"):
        torch.manual_seed(0)
        model = build_model("vae", 3)
        train(model, small_mnist, TrainConfig(epochs=1, batch_size=128, device=device, evaluate_each_epoch=False))
        models.append(model.state_dict())
    assert not torch.cuda.is_available()  # this test is about CPU machines: auto must mean the CPU here
    for name, value in models[0].items():
        assert torch.equal(value, models[1][name]), name
