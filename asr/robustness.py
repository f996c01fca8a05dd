"""Does a recogniser keep its accuracy when speech comes as users record it?

:func:`silence_robustness` scores the same utterances four ways: as they are; each with
``pad_seconds`` of digital silence before and after; each with that much faint noise
(``noise_dbfs``) instead; and all of them joined into one long recording with
``pause_seconds`` of silence between them, transcribed through the chunking of
:func:`asr.transcribe.transcribe_files` as a user's long file would be. ``bench/silence.py``
prints the table; the end-to-end test asserts it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import load_audio
from asr.augment import silence
from asr.data import Utterance
from asr.decoding import Decoder, GreedyDecoder
from asr.metrics import ErrorRates, error_rates
from asr.transcribe import transcribe_files, transcribe_waves

CONDITIONS = ("plain", "padded_silence", "padded_noise", "joined")


def silence_robustness(recognizer, utterances: Sequence[Utterance], decoder: Decoder | None = None,
                       device: torch.device | str = "cpu", pad_seconds: float = 1.0, noise_dbfs: float = -60.0,
                       pause_seconds: float = 0.5, chunk_seconds: float = 20.0, cut_pause: float | None = 0.3,
                       seed: int = 0) -> dict[str, ErrorRates]:
    """Error rates of ``utterances`` under each of :data:`CONDITIONS`.

    Parameters
    ----------
    recognizer
        A :class:`asr.recognizer.Recognizer` (or an exported one).
    utterances : sequence of Utterance
        Audio and reference texts; joined in this order for ``joined``.
    noise_dbfs : float
        RMS of the coloured noise in ``padded_noise``, in dB below full scale.
    chunk_seconds, cut_pause : float
        Longest chunk, and the pause that ends one, when the joined recording is transcribed
        (``asr-transcribe --chunk-seconds``, ``--cut-pause``).

    Returns
    -------
    dict
        Condition name to :class:`asr.metrics.ErrorRates`; ``joined`` counts one utterance.
    """
    decoder = decoder or GreedyDecoder(recognizer.vocab)
    rate = recognizer.sample_rate
    rng = np.random.default_rng(seed)
    waves = [load_audio(u.audio_filepath, rate) for u in utterances]  # (samples,) each
    refs = [recognizer.vocab.normalize(u.text) for u in utterances]
    pad = int(pad_seconds * rate)
    level = 10 ** (noise_dbfs / 20)
    variants = {
        "plain": waves,
        "padded_silence": [torch.cat([silence(pad, None, rng), w, silence(pad, None, rng)]) for w in waves],
        "padded_noise": [torch.cat([silence(pad, level, rng), w, silence(pad, level, rng)]) for w in waves],
    }
    out = {}
    for name, batch in variants.items():
        hyps = [nbest[0].text if nbest else "" for nbest in transcribe_waves(recognizer, batch, decoder, device)]
        out[name] = error_rates(refs, hyps)
    gap = silence(int(pause_seconds * rate), None, rng)
    joined = torch.cat([piece for w in waves for piece in (w, gap)][:-1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "joined.wav"
        sf.write(path, joined.numpy(), rate, subtype="FLOAT")
        (result,) = transcribe_files(recognizer, [str(path)], decoder, device, chunk_seconds=chunk_seconds,
                                     cut_pause=cut_pause)
    out["joined"] = error_rates([" ".join(r for r in refs if r)], [result.text])
    return out
