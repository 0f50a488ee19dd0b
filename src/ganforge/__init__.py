"""ganforge: train the classic and modern GANs correctly on a laptop CPU in minutes.

    import ganforge
    cfg = ganforge.resolve_config("mnist-mlp-bn", overrides={"train.epochs": 5})
    run = ganforge.train(cfg, "runs/mine")
    images = ganforge.load("runs/mine").sample(16)   # (16, 1, 28, 28) in [0, 1]
"""

from ._version import __version__
from .api import LoadedGAN, Run, load, train
from .config import Config, preset_names, resolve_config
from .errors import GanforgeError
from .exports import export

__all__ = ["Config", "GanforgeError", "LoadedGAN", "Run", "export", "load", "preset_names", "resolve_config", "train",
           "__version__"]
