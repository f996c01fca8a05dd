"""Corpora, one module each, in lhotse's convention: ``download_X`` fetches and verifies
corpus ``X``, ``prepare_X`` writes its JSON-lines manifests (``train/dev/test.jsonl``).

- :mod:`asr.corpora.fsdd`: the Free Spoken Digit Dataset as connected digits
  (:func:`~asr.corpora.fsdd.download_fsdd`, :func:`~asr.corpora.fsdd.prepare_digits`,
  :func:`~asr.corpora.fsdd.synthesize_digits` for eSpeak NG digit strings).
- :mod:`asr.corpora.librispeech`: LibriSpeech subsets (``download_librispeech``,
  ``prepare_librispeech``, ``read_librispeech_subset``).
- :mod:`asr.corpora.speechocean762`: speechocean762 (``download_speechocean762``); its
  Kaldi data directories are read by :mod:`asr.kaldi`.
- :mod:`asr.corpora.demo`: the offline demo corpus, synthesised with eSpeak NG
  (``prepare_demo``).
- :mod:`asr.corpora.common`: what they share (``PrepareError``, ``split_by_speaker``).

The ``asr-prepare`` command (:mod:`asr.prepare`) exposes them; Kaldi data directories,
lhotse manifests and Hugging Face datasets are :mod:`asr.kaldi`, :mod:`asr.lhotse`,
:mod:`asr.hf`.
"""
