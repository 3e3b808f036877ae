"""The report's convolutional AE and VAE on MNIST: models, data, training, checkpoints, analysis.

No Streamlit here: the app's pages only lay out what this package computes.
"""
__version__ = "0.4.0"  # as in pyproject.toml

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .correction import Spot, calibrate_spot_level, corrected_spots
from .data import FALLBACK_SUBSET, FULL_MNIST, MnistData, load_mnist
from .model import ConvAE, ConvVAE, ModelConfig, build_model
from .preprocess import prepare_array, prepare_image
from .scores import SCORES, anomaly_score
from .train import Progress, TrainConfig, TrainingDiverged, TrainResult, evaluate_loss, train

__all__ = [
    "CheckpointError", "load_checkpoint", "save_checkpoint",
    "Spot", "calibrate_spot_level", "corrected_spots",
    "SCORES", "anomaly_score",
    "FALLBACK_SUBSET", "FULL_MNIST", "MnistData", "load_mnist",
    "ConvAE", "ConvVAE", "ModelConfig", "build_model",
    "prepare_array", "prepare_image",
    "Progress", "TrainConfig", "TrainingDiverged", "TrainResult", "evaluate_loss", "train",
]
