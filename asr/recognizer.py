"""Features and acoustic model in one module: what a checkpoint holds."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asr.checkpoint import CheckpointError, load_checkpoint
from asr.features import FeatureConfig, LogMel
from asr.models import build_model, model_config
from asr.subword import vocabulary_from_state, vocabulary_state
from asr.text import Vocabulary
from asr.utils import UserError

FeatureTransform = Callable[[torch.Tensor], torch.Tensor]
"""Maps features ``(batch, frames, n_mels)`` to new ones of the same shape (see :meth:`Recognizer.forward`)."""


class Timing:
    """``sample_rate`` and ``frame_shift`` of anything with ``feature_cfg`` and ``model_cfg``
    (a :class:`Recognizer` or an exported one); ``model_cfg`` is any model's config
    (:mod:`asr.models`)."""

    feature_cfg: FeatureConfig
    model_cfg: Any

    @property
    def sample_rate(self) -> int:
        return self.feature_cfg.sample_rate

    @property
    def frame_shift(self) -> float:
        """Seconds per encoder step (output frame)."""
        return self.feature_cfg.hop_length * self.model_cfg.frames_per_step / self.feature_cfg.sample_rate


class Recognizer(Timing, nn.Module):
    """``forward(waves (batch, samples), lengths (batch,)) -> (log_probs (batch, steps, vocab), step_lengths (batch,))``."""

    def __init__(self, feature_cfg: FeatureConfig, model_cfg, vocab: Vocabulary):
        super().__init__()
        self.feature_cfg, self.model_cfg, self.vocab = feature_cfg, model_cfg, vocab
        self.features = LogMel(feature_cfg)
        self.model = build_model(model_cfg, feature_cfg.n_mels, len(vocab))

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor,
                transform: FeatureTransform | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``waves (batch, samples)`` -> ``log_probs (batch, steps, vocab)``, ``lengths (batch,)``.
        ``transform``, when given, maps the features ``(batch, frames, n_mels)`` to new ones of
        the same shape before the encoder (e.g. a test-time frequency warp)."""
        feats, frames = self.features(waves, lengths)  # (batch, frames, n_mels)
        if transform is not None:
            feats = transform(feats)
        return self.model(feats, frames)

    def describe(self) -> dict:
        """The self-description saved with the weights."""
        return {
            "feature_config": dataclasses.asdict(self.feature_cfg),
            "model_config": dataclasses.asdict(self.model_cfg),
            **vocabulary_state(self.vocab),
            "state_dict": self.state_dict(),
        }

    @classmethod
    def from_checkpoint(cls, path_or_state: str | os.PathLike | dict, device: str | torch.device = "cpu") -> "Recognizer":
        state = path_or_state if isinstance(path_or_state, dict) else load_checkpoint(path_or_state)
        try:
            rec = cls(FeatureConfig(**state["feature_config"]), model_config(state["model_config"]),
                      vocabulary_from_state(state))
            rec.load_state_dict(state["state_dict"])
        except (TypeError, ValueError, RuntimeError, UserError) as e:
            raise CheckpointError(f"checkpoint does not match this version of asr ({str(e).splitlines()[0]})") from None
        rec.card = state.get("model_card") or {}  # what asr-export --format state wrote (training data, WER)
        return rec.to(device).eval()


def output_steps(duration: float, feature_cfg: FeatureConfig, model_cfg) -> int:
    """Model output steps for ``duration`` seconds of audio, as a :class:`Recognizer` with
    these configs produces them (CTC needs at least as many as the label's tokens and
    repeats)."""
    return model_cfg.output_lengths(feature_cfg.num_frames(int(round(duration * feature_cfg.sample_rate))))
