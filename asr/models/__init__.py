"""Acoustic models, one module each, registered by name in :data:`MODELS`.

A model config's ``name`` selects its class (``model=ds2`` on the ``asr-train`` command line
picks the preset ``asr/conf/model/ds2.yaml``, whose schema is :class:`DS2Config`). A
checkpoint whose model config has no name is a ``birnn`` one (written before this package).

Every model keeps one contract, and nothing outside this package knows more of it:

- ``Model(cfg, input_dim, vocab_size)``, with ``config_class`` its config dataclass;
- ``forward(features (batch, frames, n_mels), lengths (batch,))
  -> (log_probs (batch, steps, vocab) float32, steps (batch,))``, where an utterance's
  output does not depend on what it is batched with (in eval mode);
- ``output_lengths(frame_lengths)``: output steps for that many feature frames;
- ``for_export()``: the model sharing its weights in a form that ``torch.jit.trace`` and the
  ONNX exporter follow for every length.

Its config dataclass has ``name`` (the key here), ``frames_per_step`` (feature frames per
output step: word times and the frame shift) and ``output_lengths(frame_lengths)`` (for an
int or a tensor; the model's answers the same), so that exported models and CTC
feasibility checks need no weights.
"""

from __future__ import annotations

from torch import nn

from asr.models.birnn import BiRNNConfig, BiRNNCTC
from asr.models.ds2 import DS2Config, DS2CTC
from asr.utils import UserError

MODELS: dict[str, type[nn.Module]] = {"birnn": BiRNNCTC, "ds2": DS2CTC}
DEFAULT = "birnn"  # a model config without a name (checkpoints before asr.models)

__all__ = ["DEFAULT", "MODELS", "BiRNNCTC", "BiRNNConfig", "DS2CTC", "DS2Config", "build_model", "config_classes",
           "model_class", "model_config"]


def model_class(name: str) -> type[nn.Module]:
    """The model class registered as ``name``; an unknown name is a one-line :class:`UserError`."""
    if name not in MODELS:
        raise UserError(f"model.name={name!r} is not a model of this version of asr; expected one of "
                        f"{', '.join(sorted(MODELS))}")
    return MODELS[name]


def config_classes() -> dict[str, type]:
    """``{name: config dataclass}`` of every registered model (the Hydra schemas of ``model=``)."""
    return {name: cls.config_class for name, cls in MODELS.items()}


def model_config(d: dict):
    """The config dataclass described by ``d`` (``dataclasses.asdict`` of one, e.g. a
    checkpoint's ``model_config``); without a ``name``, a ``birnn`` one."""
    d = dict(d)
    return model_class(d.setdefault("name", DEFAULT)).config_class(**d)


def build_model(cfg, input_dim: int, vocab_size: int) -> nn.Module:
    """The model ``cfg`` describes, for ``input_dim`` features per frame and ``vocab_size`` outputs."""
    return model_class(cfg.name)(cfg, input_dim, vocab_size)
