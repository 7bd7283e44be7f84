"""mlplatform: Ray-distributed training and hyperparameter search for audio/signal model families."""

__version__ = "0.1.0"
