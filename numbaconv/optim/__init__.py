"""numbaconv.optim: SGD, Adam, AdamW and learning-rate schedulers with PyTorch's update rules."""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "lr_scheduler"]
