"""How well the models detect anomalies, measured four ways; `python -m vae benchmark …` runs them.

- one-class: train on one digit's training images, score all 10,000 test images, AUROC of "not this
  digit" vs "this digit" (the protocol of Deep SVDD, OCGAN and GEOM), for each score of vae/detector.py.
- flaws: test digits vs the same digits with a synthetic flaw (vae/flaws.py): image AUROC, pixel AUROC
  of |difference| against the flaw, and how well the corrected spots find the flaw.
- ood: the project's non-digits (vae/nondigits.py: letters, shapes, scribbles, noise, scikit-learn's digits),
  prepared like a drawing: the share of each flagged at the app's default rule, beside the test digits'.
- identity (report Fig. 8): a small CNN reads each model's reconstructions of the test digits.

Each writes JSON to checkpoints/benchmark/, which the app's "Detection benchmark" page reads.
"""
from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from . import __version__
from .checkpoint import ONE_CLASS_FOLDER, checkpoint_dir, load_checkpoint, save_checkpoint
from .correction import calibrate_spot_level, corrected_spots_batch
from .data import MnistData, to_float
from .detector import DETECTOR_SCORES, Detector
from .files import write_atomically
from .flaws import FLAW_KINDS, add_flaw
from .model import build_model
from .nondigits import EVALUATION_SEED, nondigit_set
from .scores import SCORES, dataset_scores
from .touching_flaws import TOUCHING_KINDS, add_touching_flaw, off_ink_pixels
from .train import TrainConfig, format_duration, train

CLASSIFIER_FILE = "digit-classifier.pt"  # in results_dir()


def results_dir() -> Path:
    return checkpoint_dir() / "benchmark"


def one_class_dir() -> Path:
    return checkpoint_dir() / ONE_CLASS_FOLDER
BENCHMARKS = ("one-class", "flaws", "ood", "identity", "shift")  # shift: vae/shift_benchmark.py

# Mean AUROC over the ten digits on the same one-class MNIST protocol: the paper that reports the number
# ("source") and where in it. GEOM's own paper (Golan & El-Yaniv, NeurIPS 2018) has no MNIST results: its
# 98.0 is the figure later papers list for it, here as ARNet's paper lists it beside its own 98.3.
PUBLISHED = [
    {"method": "Deep SVDD", "reference": "Ruff et al., ICML", "year": 2018, "mean_auroc": 94.8,
     "source": "Ruff et al., Deep One-Class Classification, ICML 2018, Table 1 (one-class Deep SVDD, mean of the ten digits)"},
    {"method": "OCGAN", "reference": "Perera et al., CVPR", "year": 2019, "mean_auroc": 97.5,
     "source": "Perera, Nallapati & Xiang, OCGAN, CVPR 2019, its MNIST one-class table (table number not checked offline)"},
    {"method": "GEOM (GeoTrans)", "reference": "Golan & El-Yaniv, NeurIPS", "year": 2018, "mean_auroc": 98.0,
     "source": "not in Golan & El-Yaniv's paper; as listed in Huang et al.'s ARNet paper, MNIST one-class table "
               "(table number not checked offline)"},
    {"method": "ARNet", "reference": "Huang et al., arXiv 1911.10676", "year": 2019, "mean_auroc": 98.3,
     "source": "Huang et al., Attribute Restoration Framework for Anomaly Detection (ARNet; first titled "
               "Inverse-Transform AutoEncoder), MNIST one-class table (table number not checked offline)"},
]
ONE_CLASS_CONFIG = {"kind": "vae", "latent": 64, "epochs": 60, "batch_size": 128, "beta": 1.0}
FLAW_SAMPLE = 2000  # test digits per flaw kind
FLAW_MASK_LEVEL = 0.1  # a pixel belongs to the flaw where the flaw changed it by more than this
DEFAULT_MODELS = {  # what flaws, ood and identity measure unless told otherwise
    "flaws": ("vae-z64", "ae-z64", "vae-z3"),
    "ood": ("vae-z64", "ae-z64"),
    "shift": ("ae-z64", "fc-ae-z64", "vae-z64", "fc-vae-z64"),  # the shipped conv models and their FC baselines
    "identity": ("vae-z64", "ae-z64", "vae-z3", "ae-z3", "vae-z2", "ae-z2"),
}

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def auroc(normal_scores, anomaly_scores) -> float:
    """AUROC in percent of telling anomalies (positives) from normal images by a score."""
    from sklearn.metrics import roc_auc_score  # here: scikit-learn takes ~2 s to import, and every CLI run reads this module

    normal_scores, anomaly_scores = np.asarray(normal_scores), np.asarray(anomaly_scores)
    labels = np.r_[np.zeros(len(normal_scores)), np.ones(len(anomaly_scores))]
    return float(100.0 * roc_auc_score(labels, np.r_[normal_scores, anomaly_scores]))


def applicable_scores(model) -> list[str]:
    return [s for s in DETECTOR_SCORES if not (s == "kl" and not model.variational)]


# --- one-class ------------------------------------------------------------------------------------

def one_class_path(kind: str, latent: int, digit: int, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or one_class_dir()) / f"{kind}-z{latent}-d{digit}.pt"


def evaluate_one_class(model, data: MnistData, digits, scores=None) -> dict[str, float]:
    """AUROC (%) of "not one of `digits`" vs "one of `digits`" over all test images, per score, for a model
    trained on those digits; fitted on the training images of those digits. Inference only: seconds."""
    digits = sorted(int(d) for d in digits)
    train_images = data.select(digits=digits).train_images
    own = np.isin(data.test_labels.numpy(), digits)
    if own.all() or not own.any():
        raise ValueError("the test images must hold both the model's digits and others")
    result = {}
    for score in scores or applicable_scores(model):
        values = Detector(model, score).fit(train_images).decision_function(data.test_images)
        result[score] = auroc(values[own], values[~own])
    return result


def one_class(data: MnistData, kind: str = "vae", latent: int = 64, epochs: int = 60, seeds: int = 1,
              digits=range(10), batch_size: int = 128, beta: float = 1.0, train_models: bool = True,
              models_dir: str | os.PathLike | None = None, log: Log = _quiet, on_progress=None) -> dict:
    """Per digit and seed, AUROC for every score. With train_models, trains each model (the first seed's
    are saved to `models_dir`); without, evaluates the models already there (one seed)."""
    rows = []
    seeds = seeds if train_models else 1
    if train_models:
        Path(models_dir).mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        for digit in digits:
            path = one_class_path(kind, latent, digit, models_dir)
            start = time.perf_counter()
            if train_models:
                model = build_model(kind, latent, beta)
                result = train(model, data.select(digits=[digit]),
                               TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, evaluate_each_epoch=False,
                                           device="cpu"), on_progress)
                model.cpu().use_device_kernels("cpu")
                if seed == 0:
                    own = data.select(digits=[digit]).train_images
                    save_checkpoint(model, path, {"digits": [digit], "epochs": epochs, "seed": seed,
                                                  "train_images": len(own), "spot_level": calibrate_spot_level(model, own),
                                                  "data_source": data.source, "batch_size": batch_size,
                                                  "train_loss": {k.removeprefix("train_"): v for k, v in
                                                                 result.history[-1].items() if k.startswith("train_")},
                                                  "purpose": "one-class benchmark"})
            else:
                model, _ = load_checkpoint(path)
            aurocs = evaluate_one_class(model, data, [digit])
            seconds = time.perf_counter() - start
            rows.append({"digit": digit, "seed": seed, "seconds": round(seconds, 1), "auroc": aurocs})
            best = max(aurocs, key=aurocs.get)
            log(f"seed {seed} digit {digit}: {format_duration(seconds)}, best {best} {aurocs[best]:.2f}, "
                f"combined {aurocs.get('combined', float('nan')):.2f}, squared_error {aurocs['squared_error']:.2f}")
    return {"config": {"kind": kind, "latent": latent, "epochs": epochs, "batch_size": batch_size, "beta": beta,
                       "seeds": seeds, "digits": list(digits), "trained_here": train_models},
            "rows": rows, "summary": summarise_one_class(rows), "published": PUBLISHED}


def summarise_one_class(rows: list[dict]) -> dict:
    """Per score: mean over digits for each seed, then mean and sd of that over seeds; per digit mean over seeds."""
    scores = sorted({s for row in rows for s in row["auroc"]})
    seeds = sorted({row["seed"] for row in rows})
    digits = sorted({row["digit"] for row in rows})
    summary = {}
    for score in scores:
        table = np.array([[next(r["auroc"][score] for r in rows if r["seed"] == s and r["digit"] == d)
                           for d in digits] for s in seeds])  # (seeds, digits)
        per_seed = table.mean(1)
        summary[score] = {"mean": float(per_seed.mean()), "sd": float(per_seed.std(ddof=1)) if len(seeds) > 1 else 0.0,
                          "per_digit": {str(d): float(v) for d, v in zip(digits, table.mean(0))},
                          "worst_digit": int(digits[int(table.mean(0).argmin())]), "worst": float(table.mean(0).min())}
    return summary


# --- synthetic flaws -----------------------------------------------------------------------------

def flawed_test_digits(data: MnistData, kind: str, n: int = FLAW_SAMPLE, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(clean, flawed, flaw mask) float32 (n, 28, 28) for a fixed random sample of test digits."""
    n = min(n, len(data.test_images))
    rows = np.random.default_rng(seed).choice(len(data.test_images), n, replace=False)
    clean = to_float(data.test_images[torch.from_numpy(rows)]).numpy()[:, 0]
    make = add_touching_flaw if kind in TOUCHING_KINDS else add_flaw
    flawed = np.stack([make(image, kind, seed=int(i)) for i, image in zip(rows, clean)])
    return clean, flawed, np.abs(flawed - clean) > FLAW_MASK_LEVEL


TOUCHING_GOAL_KINDS = ("stroke", "disc", "extension")  # flaws that add ink touching the digit
OFF_INK_BINS = ((0, 2), (3, 7), (8, 784))  # pixels of the flaw off the digit's ink: hit rate per bin


def spot_hits(spots_per_image: list[list], masks: np.ndarray, off_ink: np.ndarray | None = None) -> dict[str, float]:
    """Share of images with a spot touching its flaw, and share of spots that touch one (a spot touches a
    flaw when they share a pixel or are 8-neighbours); with `off_ink` (pixels of each flaw off the ink), the
    hit rate per OFF_INK_BINS too ("hit_rate_off_ink_3_7": …, NaN for an empty bin)."""
    hits, spots, touching = [], 0, 0
    for spots_here, mask in zip(spots_per_image, masks):
        grown = ndimage.binary_dilation(mask, structure=np.ones((3, 3), dtype=bool))
        touches = [bool((spot.mask & grown).any()) for spot in spots_here]
        hits.append(any(touches))
        spots += len(touches)
        touching += sum(touches)
    hits = np.array(hits, dtype=bool)
    result = {"hit_rate": 100.0 * hits.mean() if len(hits) else 0.0,
              "precision": 100.0 * touching / spots if spots else float("nan")}
    if off_ink is not None:
        for low, high in OFF_INK_BINS:
            inside = (off_ink >= low) & (off_ink <= high)
            result[f"hit_rate_off_ink_{low}_{high}"] = 100.0 * float(hits[inside].mean()) if inside.any() else float("nan")
            result[f"images_off_ink_{low}_{high}"] = int(inside.sum())
    return result


def flaws(model, data: MnistData, n: int = FLAW_SAMPLE, score: str = "default", kinds=None, log: Log = _quiet) -> dict:
    """Per flaw kind: image AUROC (score), pixel AUROC (|difference|), spot hit rate and precision; and the
    share of clean digits with at least one spot. Spots at the model's calibrated level (stored in its
    checkpoint, else measured on the training images here)."""
    level = getattr(model, "spot_level", None)
    level = calibrate_spot_level(model, data.train_images) if level is None else level
    result = {"score": score, "images": n, "spot_level": level, "kinds": {}}
    clean = None
    for kind in kinds or [*FLAW_KINDS[1:], *TOUCHING_KINDS]:
        clean, flawed, masks = flawed_test_digits(data, kind, n)
        clean_scores = dataset_scores(model, torch.from_numpy(clean[:, None]), score)
        flawed_scores = dataset_scores(model, torch.from_numpy(flawed[:, None]), score)
        spots, differences = corrected_spots_batch(model, flawed, level)
        from sklearn.metrics import roc_auc_score

        pixel_auroc = 100.0 * roc_auc_score(masks.ravel(), np.abs(differences).ravel()) if masks.any() else float("nan")
        result["kinds"][kind] = {"image_auroc": auroc(clean_scores, flawed_scores), "pixel_auroc": float(pixel_auroc),
                                 "touches_the_digit": kind in TOUCHING_KINDS,
                                 **spot_hits(spots, masks, off_ink_pixels(clean, flawed))}
        log(f"{kind}: " + ", ".join(f"{k} {v:.1f}" for k, v in result["kinds"][kind].items()))
    touching = [result["kinds"][k] for k in TOUCHING_GOAL_KINDS if k in result["kinds"]]
    if touching:  # the goal is on these three together: hit ≥ 70 %, precision ≥ 85 %
        result["touching"] = {"kinds": list(TOUCHING_GOAL_KINDS),
                              "hit_rate": float(np.mean([k["hit_rate"] for k in touching])),
                              "precision": float(np.nanmean([k["precision"] for k in touching]))}
        log(f"touching the digit ({', '.join(TOUCHING_GOAL_KINDS)}): hit {result['touching']['hit_rate']:.1f} %, "
            f"precision {result['touching']['precision']:.1f} %")
    clean_spots, _ = corrected_spots_batch(model, clean, level)
    result["clean_circled"] = 100.0 * float(np.mean([bool(s) for s in clean_spots]))
    log(f"clean digits circled: {result['clean_circled']:.1f} %")
    return result


# --- out of distribution --------------------------------------------------------------------------

OOD_IMAGES_PER_KIND = 300  # of each non-digit kind, drawn with EVALUATION_SEED
OOD_RULE_PERCENTILE = 99.0  # the app's default threshold: the 99th percentile of training digits' scores


def ood(model, data: MnistData, n_per_kind: int = OOD_IMAGES_PER_KIND, scores=None, log: Log = _quiet) -> dict:
    """Per score: the share (%) of each non-digit kind (vae/nondigits.py, EVALUATION_SEED; never seen by
    any choice) and of the MNIST test digits flagged at the 99th percentile of the training digits' scores,
    and AUROC of each kind against the test digits."""
    sets = {kind: torch.from_numpy(np.round(images * 255).astype(np.uint8)[:, None])
            for kind, images in nondigit_set(n_per_kind, EVALUATION_SEED).items()}
    result = {"images_per_kind": n_per_kind, "seed": EVALUATION_SEED, "mnist_test_images": len(data.test_images),
              "rule": f"score above the {OOD_RULE_PERCENTILE:g}th percentile of the training digits' scores",
              "flagged": {}, "auroc": {}}
    for score in scores or applicable_scores(model):
        detector = Detector(model, score).fit(data.train_images)
        limit = float(np.percentile(detector.reference_scores, OOD_RULE_PERCENTILE))
        test = detector.decision_function(data.test_images)
        flagged, aurocs = {"test_digits": 100.0 * float(np.mean(test > limit))}, {}
        for kind, images in sets.items():
            values = detector.decision_function(images)
            flagged[kind], aurocs[kind] = 100.0 * float(np.mean(values > limit)), auroc(test, values)
        result["flagged"][score], result["auroc"][score] = flagged, aurocs
        log(f"{score}: flagged " + ", ".join(f"{k} {v:.1f} %" for k, v in flagged.items()))
    return result


def ood_rows(results: dict) -> list[dict]:
    """The ood JSON's "models" as table rows: model, score, then the share (%) flagged of the test digits and of
    each non-digit kind, the best at catching letters and shapes first."""
    rows = [{"model": name, "score": score, **flagged}
            for name, result in results["models"].items() for score, flagged in result.get("flagged", {}).items()]
    return sorted(rows, key=lambda row: (row["model"], -min(row.get("letter", 0), row.get("shape", 0))))


def strength_lines(scores) -> dict[str, str]:
    """score → its measured strength in one line, from the stored ood and one-class results."""
    ood, one_class = read_results("ood"), read_results("one-class")
    return {s: strength_line(s, ood and ood["results"], one_class and one_class["results"]) for s in scores}


def strength_line(score: str, ood_results: dict | None, one_class_results: dict | None, model: str = "vae-z64") -> str:
    """One line of what the benchmark measured for a score: non-digits and test digits flagged by `model`
    at the 99th training percentile, and its one-class MNIST mean AUROC; "not measured" where it was not."""
    parts = []
    flagged = ((ood_results or {}).get("models", {}).get(model, {}).get("flagged", {}).get(score))
    if flagged:
        parts.append(f"{model} flags letters {flagged['letter']:.0f} %, shapes {flagged['shape']:.0f} %, "
                     f"test digits {flagged['test_digits']:.1f} %")
    one_class_summary = (one_class_results or {}).get("summary", {}).get(score)
    if one_class_summary:
        parts.append(f"one-class AUROC {one_class_summary['mean']:.1f}")
    return "; ".join(parts) if parts else "not measured by the benchmark"


def auroc_note(value: float) -> str:
    """What an AUROC says in words: below 50 the score ranks the other digits as more normal than its own."""
    if value < 50:
        return "inverted: this score calls the model's own digits more anomalous than the others (below guessing)"
    return "guessing" if value < 55 else ""


# --- identity (report Fig. 8) ------------------------------------------------------------------------

class DigitClassifier(nn.Module):
    """A small CNN that reads MNIST digits (~99 % on the test set): the judge of what a reconstruction shows."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14×14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7×7
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
        self.eval()
        images = to_float(images) if images.dtype == torch.uint8 else images
        return torch.cat([self(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]).numpy()


def train_classifier(data: MnistData, epochs: int = 2, seed: int = 0) -> DigitClassifier:
    torch.manual_seed(seed)
    model = DigitClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order_rng = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data.train_images), generator=order_rng)
        for start in range(0, len(order), 128):
            rows = order[start:start + 128]
            loss = nn.functional.cross_entropy(model(to_float(data.train_images[rows])), data.train_labels[rows].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def classifier(data: MnistData, path: str | os.PathLike | None = None, retrain: bool = False,
               log: Log = _quiet) -> DigitClassifier:
    """The judging CNN: loaded from `path` (weights only), or trained on data and saved there atomically."""
    path = Path(path or results_dir() / CLASSIFIER_FILE)
    model = DigitClassifier()
    if path.exists() and not retrain:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval()
    log("training the digit classifier (2 epochs)…")
    model = train_classifier(data)
    write_atomically(path, lambda f: torch.save(model.state_dict(), f))
    return model


@torch.no_grad()
def identity(models: dict, data: MnistData, classifier: DigitClassifier, log: Log = _quiet) -> dict:
    """How often the classifier reads each model's reconstruction of a test digit as that digit (%)."""
    labels = data.test_labels.numpy()
    result = {"classifier_on_clean": 100.0 * float((classifier.predict(data.test_images) == labels).mean()), "models": {}}
    for name, model in models.items():
        model.eval()
        recon = torch.cat([model.reconstruct(to_float(data.test_images[i:i + 2000])).cpu()
                           for i in range(0, len(data.test_images), 2000)])
        result["models"][name] = 100.0 * float((classifier.predict(recon) == labels).mean())
        log(f"{name}: {result['models'][name]:.1f} % read as the digit it was")
    return result


# --- results files ----------------------------------------------------------------------------------

def results_path(benchmark: str, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or results_dir()) / f"{benchmark}.json"


def write_results(benchmark: str, results: dict, folder: str | os.PathLike | None = None, seconds: float | None = None) -> Path:
    """Atomically write {benchmark, version, machine, seconds, results} as JSON."""
    path = results_path(benchmark, folder)
    payload = {"benchmark": benchmark, "version": __version__, "written": time.strftime("%Y-%m-%d %H:%M"),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
               "seconds": None if seconds is None else round(seconds, 1), "results": results}
    write_atomically(path, lambda f: f.write(json.dumps(payload, indent=1, allow_nan=True).encode()))
    return path


def read_results(benchmark: str, folder: str | os.PathLike | None = None) -> dict | None:
    """The JSON a benchmark wrote, or None if it has not been run."""
    path = results_path(benchmark, folder)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


__all__ = ["BENCHMARKS", "SCORES", "PUBLISHED", "auroc", "evaluate_one_class", "one_class", "flaws", "ood", "identity",
           "read_results", "write_results"]
