"""What every example shares: its command line and, for the two training scripts, the digits as 3 x 32 x 32."""

import argparse
import os
from pathlib import Path

import numpy as np

from numbaconv.data import TensorDataset


def arguments(description: str, epochs: int | None = None) -> argparse.Namespace:
    """--out DIR (else $NUMBACONV_EXAMPLES_OUT, else ./numbaconv-examples), created; --epochs when given a default."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=os.environ.get("NUMBACONV_EXAMPLES_OUT", "numbaconv-examples"))
    if epochs is not None:
        parser.add_argument("--epochs", type=int, default=epochs)
    args = parser.parse_args()
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def as_rgb32(dataset: TensorDataset) -> TensorDataset:
    """(N, 1, 8, 8) digits -> (N, 3, 32, 32): each pixel a 4 x 4 block, the gray copied to R, G and B."""
    images, labels = (t.numpy() for t in dataset.tensors)
    images = images.repeat(4, axis=2).repeat(4, axis=3).repeat(3, axis=1)
    return TensorDataset(np.ascontiguousarray(images), labels)
