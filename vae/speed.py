"""python -m vae bench: this trainer against a textbook PyTorch loop, same model, data and machine.

The baseline is what most tutorials write: torchvision MNIST + ToTensor, DataLoader(batch_size=128,
shuffle=True), Adam at 1e-3, eager. Both train a fresh ConvVAE(64) from the same seed for the same
number of epochs; the ratio of images per second is the speed-up, and the test loss after training
shows the speed is not bought with a worse model. On a GPU (`device`) both loops train there: the
textbook loop copies each batch to it (pinned, non-blocking), this trainer keeps the data on it.
"""
from __future__ import annotations

import json
import time

import torch

from .data import INFERENCE_CHUNK, default_data_root, load_mnist, to_float
from .devices import pick_device
from .model import ConvVAE
from .train import TrainConfig, evaluate_loss, train


def textbook_loader(data_root: str, images: int | None = None, pin_memory: bool = False):
    """What tutorials write: torchvision MNIST + ToTensor in a DataLoader of 128, shuffled (only its first
    `images` if given: a quick check of a script)."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(data_root, train=True, download=False, transform=transforms.ToTensor())
    if images is not None:
        dataset = Subset(dataset, range(min(images, len(dataset))))
    return DataLoader(dataset, batch_size=128, shuffle=True, pin_memory=pin_memory)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read after it counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def textbook_step(model, optimizer, x: torch.Tensor) -> None:
    loss = model.loss(x.to(model.device, non_blocking=True))["total"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def textbook_loop(data_root: str, epochs: int, seed: int = 0, device: torch.device = torch.device("cpu"),
                  images: int | None = None) -> tuple[ConvVAE, float]:
    torch.manual_seed(seed)
    model = ConvVAE(64).to(device).use_device_kernels(device)
    loader = textbook_loader(data_root, images, pin_memory=device.type == "cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            textbook_step(model, optimizer, x)
            seen += len(x)
    synchronize(device)
    return model, seen / (time.perf_counter() - start)


@torch.inference_mode()
def test_set_inference_seconds(model, images: torch.Tensor) -> float:
    """Embed every test image and reconstruct it from that embedding (the latent and histogram pages);
    the images start where the caller keeps them (on the CPU: the pages hold them there)."""
    model.eval()
    synchronize(model.device)
    start = time.perf_counter()
    for i in range(0, len(images), INFERENCE_CHUNK):
        model.decode(model.embed(to_float(images[i:i + INFERENCE_CHUNK].to(model.device, non_blocking=True))))
    synchronize(model.device)
    return time.perf_counter() - start


def run(data_root: str | None = None, epochs: int = 1, seed: int = 0, device: str = "cpu",
        images: int | None = None) -> dict:
    """Both loops on `device` ("cpu", "cuda", "mps" or "auto"); `images`: train on only this many (a quick
    check of a script, not a measurement)."""
    root = data_root or default_data_root()
    where = pick_device(device)
    data = load_mnist(root, download=False, allow_fallback=False)
    if images is not None:
        data = data.select(train_size=images)
    print(f"data: {data.source_label}; {epochs} epoch(s) each, ConvVAE(64), on {where}, "
          f"{torch.get_num_threads()} CPU threads")

    baseline, baseline_rate = textbook_loop(root, epochs, seed, where, images)
    baseline_test = evaluate_loss(baseline, data.test_images)["total"]
    print(f"textbook loop:  {baseline_rate:8,.0f} images/s, test loss {baseline_test:.2f}")

    torch.manual_seed(seed)
    model = ConvVAE(64)
    # Only training is timed, as in the textbook loop: no test-set evaluation after each epoch.
    result = train(model, data, TrainConfig(epochs=epochs, seed=seed, evaluate_each_epoch=False, device=str(where)))
    test = evaluate_loss(model, data.test_images)["total"]
    print(f"this trainer:   {result.images_per_s:8,.0f} images/s, test loss {test:.2f}")

    test_set_inference_seconds(model, data.test_images[:100])  # warm-up
    inference = min(test_set_inference_seconds(model, data.test_images) for _ in range(3))
    print(f"embed + reconstruct all {len(data.test_images):,} test images: {inference:.3f} s")

    summary = {
        "train_speedup": round(result.images_per_s / baseline_rate, 2),
        "train_images_per_s": round(result.images_per_s),
        "baseline_images_per_s": round(baseline_rate),
        "test_set_inference_s": round(inference, 3),
        "test_loss": round(test, 2),
        "baseline_test_loss": round(baseline_test, 2),
        "epochs": epochs,
        "device": str(where),
    }
    print(json.dumps(summary))
    return summary
