"""Training :class:`xtalnet.Network`: :func:`train` and :class:`TrainOptions`.

One module per job:

- :mod:`~xtalnet.training.options`: :class:`TrainOptions`;
- :mod:`~xtalnet.training.setup`: targets, options and config of a run (or of the run it
  resumes), its data, splits and samples;
- :mod:`~xtalnet.training.splits`: seeded train / validation / test splits;
- :mod:`~xtalnet.training.targets`: heads fitted on the train split, encoded targets;
- :mod:`~xtalnet.training.batching`: batches of an epoch, shards per rank, augmentation;
- :mod:`~xtalnet.training.loss`: the loss of a batch and the validation loss;
- :mod:`~xtalnet.training.optim`: AdamW, the learning-rate schedule, the EMA;
- :mod:`~xtalnet.training.distributed`: the ``torchrun`` process group;
- :mod:`~xtalnet.training.run_dir`: the run folder's files and log;
- :mod:`~xtalnet.training.loop`: the :class:`~xtalnet.training.loop.Trainer` and its
  epoch-end hooks (stopping rules, checkpoints, metrics files, log);
- :mod:`~xtalnet.training.run`: :func:`train`, from data to a run folder with test metrics.
"""

from xtalnet.training.options import SCHEDULES, TrainOptions
from xtalnet.training.run import train

__all__ = ["SCHEDULES", "TrainOptions", "train"]
