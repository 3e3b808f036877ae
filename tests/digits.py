"""Hand-made digits the unit tests share."""
import numpy as np


def bar_digit() -> np.ndarray:
    """A hand-made '1': a 2-px vertical stroke in a 28×28 black image."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[6:22, 13:15] = 1.0
    return image
