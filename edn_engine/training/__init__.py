"""Training the pose-to-person GAN: `TrainConfig` and the loop (`train`); checkpoints are `edn_engine.runs`."""

from .config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(*args, **kwargs):
    """See `edn_engine.training.trainer.train` (imported on use: it pulls in torch and the networks)."""
    from .trainer import train as _train

    return _train(*args, **kwargs)
