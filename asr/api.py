"""The Python entry point, in the manner of whisper's::

    import asr
    model = asr.load_model("exp/demo/best.pt", device="cpu")      # .pt, .onnx or .ts
    result = model.transcribe("a.wav")                            # or a numpy/torch array plus sample_rate=
    result.text; result.words[0].word, result.words[0].start, result.words[0].end, result.words[0].confidence
    model.transcribe(["a.wav", "b.flac"], decoder="beam", lm="lm.arpa")  # a list gives a list
    asr.evaluate(model, "test.jsonl")                             # -> WER, CER, per-utterance results

Everything here is a thin layer over :func:`asr.transcribe.transcribe_files` and
:func:`asr.evaluation.evaluate`, as the command-line tools are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from asr.audio import prepare_waveform
from asr.data import read_manifest
from asr.decoding import DecodingOptions
from asr.evaluation import Evaluation
from asr.evaluation import evaluate as _evaluate
from asr.formats import Transcript
from asr.transcribe import Input, load_recognizer, transcribe_files
from asr.utils import UserError, resolve_device

Audio = str | os.PathLike | np.ndarray | torch.Tensor


class Model:
    """A loaded recogniser (checkpoint, ONNX or TorchScript) and the device it runs on."""

    def __init__(self, recognizer, device: torch.device):
        self.recognizer, self.device = recognizer, device

    @property
    def sample_rate(self) -> int:
        return self.recognizer.sample_rate

    @property
    def card(self) -> dict:
        """The model card of a released checkpoint (``asr-export --format state``): training
        data, epochs, dev (and test) WER, configuration; empty for other files."""
        return getattr(self.recognizer, "card", {})

    def transcribe(self, audio: Audio | Sequence[Audio], sample_rate: int | None = None, *,
                   chunk_seconds: float = 20.0, cut_pause: float | None = 0.3,
                   **decoding) -> Transcript | list[Transcript]:
        """Transcribe one input, or a list of them (then a list comes back, in order).

        Parameters
        ----------
        audio
            A path to an audio file (any length: it is streamed and cut at pauses), or a
            waveform: a numpy array or tensor ``(samples,)`` or ``(samples, channels)``,
            with ``sample_rate`` (required for arrays; any rate is resampled).
        chunk_seconds, cut_pause
            As ``asr-transcribe --chunk-seconds/--cut-pause``.
        **decoding
            :class:`asr.decoding.DecodingOptions` fields: ``decoder="beam"``, ``lm``,
            ``lexicon``, ``beam_size``, ``lm_weight``, ``word_score``, ``nbest``...

        Returns
        -------
        :class:`asr.formats.Transcript`: ``text``, ``words`` (``word``, ``start``, ``end``
        in seconds, ``confidence``), ``duration``, ``nbest``. An unreadable input raises
        :class:`asr.audio.AudioError`.
        """
        several = isinstance(audio, (list, tuple))
        items = [self._input(a, sample_rate, i) for i, a in enumerate(audio if several else [audio])]
        decoder = DecodingOptions(**decoding).build(self.recognizer.vocab)
        results = list(transcribe_files(self.recognizer, items, decoder, self.device, chunk_seconds=chunk_seconds,
                                        cut_pause=cut_pause))
        return results if several else results[0]

    def _input(self, audio: Audio, sample_rate: int | None, index: int) -> Input:
        if isinstance(audio, (np.ndarray, torch.Tensor)):
            if sample_rate is None:
                raise UserError("an array of samples needs sample_rate= (its rate in Hz; it is resampled to "
                                f"the model's {self.sample_rate} Hz)")
            data = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else audio
            name = f"array-{index}"
            wave = prepare_waveform(np.asarray(data, dtype=np.float32), int(sample_rate), self.sample_rate, name)
            return Input(name, name, name, wave=wave)
        if sample_rate is not None:
            raise UserError(f"sample_rate={sample_rate} is for arrays; {audio} is read at its own rate")
        return Input(str(audio), str(audio), Path(audio).name)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto") -> Model:
    """A :class:`Model` from an ``asr-train`` checkpoint (``.pt``, loaded with
    ``weights_only=True`` and its checksum verified) or an ``asr-export`` file (``.onnx``,
    ``.ts``). ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``."""
    device = resolve_device(device) if isinstance(device, str) else device
    return Model(load_recognizer(path, device), device)


def evaluate(model: Model | str | os.PathLike, manifest: str | os.PathLike, max_batch_seconds: float = 200.0,
             **decoding) -> Evaluation:
    """WER and CER of ``model`` (a :class:`Model` or a checkpoint path) on a manifest.

    Returns an :class:`asr.evaluation.Evaluation`: ``rates`` (``wer``, ``cer`` and counts),
    ``references``/``hypotheses`` per utterance, ``per_speaker()`` and ``report()``.
    ``**decoding`` as for :meth:`Model.transcribe`.
    """
    model = model if isinstance(model, Model) else load_model(model)
    if not isinstance(model.recognizer, torch.nn.Module):
        raise UserError("asr.evaluate needs a checkpoint (.pt); an exported model can transcribe, not evaluate")
    decoder = DecodingOptions(**decoding).build(model.recognizer.vocab)
    return _evaluate(model.recognizer, read_manifest(manifest), decoder, device=model.device,
                     max_batch_seconds=max_batch_seconds)
