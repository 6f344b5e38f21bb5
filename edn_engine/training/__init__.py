"""Training the pose-to-person GAN: `TrainConfig`, the loop (`train`) and checkpoints."""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(*args, **kwargs):
    """See `edn_engine.training.trainer.train` (imported on use: it pulls in torch and the networks)."""
    from .trainer import train as _train

    return _train(*args, **kwargs)
