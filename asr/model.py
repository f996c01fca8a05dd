"""Compatibility: the acoustic models live in :mod:`asr.models` (one module each, registered
by name). This module keeps the names it had: ``BiRNNCTC``, ``ModelConfig`` (the ``birnn``
model's :class:`asr.models.BiRNNConfig`) and ``rnn_precision``."""

from asr.models.birnn import BiRNNConfig as ModelConfig
from asr.models.birnn import BiRNNCTC
from asr.models.rnn import rnn_precision

__all__ = ["BiRNNCTC", "ModelConfig", "rnn_precision"]
