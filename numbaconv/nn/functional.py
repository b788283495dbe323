"""``numbaconv.nn.functional``: the functional ops under ``torch.nn.functional``'s names.

Each op records its backward rule on the autograd tape; see ``numbaconv.ops`` for the implementations.
"""

from ..ops import *  # noqa: F403  (the same names, re-exported)
from ..ops import __all__  # noqa: F401
