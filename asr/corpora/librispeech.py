"""LibriSpeech (OpenSLR 12): ``LibriSpeech/<subset>/<speaker>/<chapter>/`` to manifests.

:func:`download_librispeech` fetches and verifies subsets; :func:`prepare_librispeech` writes
``<subset>.jsonl`` and ``train/dev/test.jsonl`` (``asr-prepare librispeech``)::

    root = download_librispeech("data", ["train-clean-100", "dev-clean", "test-clean"])
    prepare_librispeech(root, "data/manifests", ["train-clean-100"])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asr.audio import audio_info
from asr.corpora.common import PrepareError
from asr.data import Utterance, write_manifest
from asr.text import Vocabulary
from asr.utils import progress, text_lines

log = logging.getLogger(__name__)

LIBRISPEECH_SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other",
                       "train-clean-100", "train-clean-360", "train-other-500")


def read_librispeech_subset(subset_dir: str | os.PathLike, workers: int = 8) -> list[Utterance]:
    """Utterances of one LibriSpeech subset folder (``<spk>/<chapter>/<spk>-<chapter>.trans.txt``
    and ``.flac`` files), with measured durations and ``speaker``/``chapter`` keys."""
    root = Path(subset_dir)
    if not root.is_dir():
        raise PrepareError(f"{root}: LibriSpeech subset folder not found; expected "
                           "LibriSpeech/<subset>/<speaker>/<chapter>/ (download it with recipes/librispeech/run.sh)")
    vocab = Vocabulary()
    items = []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        spk, chapter = trans.parent.parent.name, trans.parent.name
        for lineno, line in enumerate(text_lines(trans, "transcript"), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{uid}.flac"
            if not audio.is_file():
                raise PrepareError(f"{trans}:{lineno}: audio {audio.name} not found beside the transcript; "
                                   "is the subset fully extracted?")
            items.append((uid, audio, vocab.normalize(text), spk, chapter))
    if not items:
        raise PrepareError(f"{root}: no <speaker>/<chapter>/*.trans.txt transcripts; pass LibriSpeech/<subset>")
    with ThreadPoolExecutor(workers) as pool:
        durations = list(progress(pool.map(lambda it: audio_info(it[1])[0], items), len(items),
                                  "reading audio headers"))
    return [Utterance(uid, str(audio), d, text, {"speaker": spk, "chapter": chapter})
            for (uid, audio, text, spk, chapter), d in zip(items, durations)]


def prepare_librispeech(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        train_subsets: Sequence[str] = ("train-clean-100",), dev_subset: str = "dev-clean",
                        test_subset: str = "test-clean", extra_subsets: Sequence[str] = ()
                        ) -> dict[str, list[Utterance]]:
    """Write ``<subset>.jsonl`` for every subset used (and for each of ``extra_subsets``,
    e.g. ``test-other``), and ``train.jsonl`` (the training subsets together),
    ``dev.jsonl`` and ``test.jsonl``, under ``out_dir``.

    ``corpus_dir`` is the ``LibriSpeech`` folder (holding the subset folders) or its parent.
    Audio paths in the manifests are absolute.
    """
    root = Path(corpus_dir)
    if not (root / train_subsets[0]).is_dir() and (root / "LibriSpeech").is_dir():
        root = root / "LibriSpeech"
    for s in (*train_subsets, dev_subset, test_subset, *extra_subsets):
        if s not in LIBRISPEECH_SUBSETS:
            raise PrepareError(f"unknown LibriSpeech subset {s!r}; expected one of {', '.join(LIBRISPEECH_SUBSETS)}")
    out_dir = Path(out_dir)
    by_subset = {}
    for s in dict.fromkeys((*train_subsets, dev_subset, test_subset, *extra_subsets)):
        by_subset[s] = read_librispeech_subset(root / s)
        write_manifest(out_dir / f"{s}.jsonl", by_subset[s], relative=False)
        log.info("%s: %d utterances, %.1f h", s, len(by_subset[s]), sum(u.duration for u in by_subset[s]) / 3600)
    result = {"train": [u for s in train_subsets for u in by_subset[s]],
              "dev": by_subset[dev_subset], "test": by_subset[test_subset]}
    for split, utts in result.items():
        write_manifest(out_dir / f"{split}.jsonl", utts, relative=False)
    return result


LIBRISPEECH_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
#: sha256 of the OpenSLR 12 archives (as torchaudio's LIBRISPEECH dataset pins them).
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}


#: MD5 as OpenSLR publishes them (https://www.openslr.org/resources/12/md5sum.txt), checked
#: beside the sha256: a pinned value mistyped here cannot pass both.
LIBRISPEECH_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}


def download_librispeech(dest_dir: str | os.PathLike, subsets: Sequence[str],
                         url: str = LIBRISPEECH_URL) -> Path:
    """Download, verify (pinned sha256 and OpenSLR's MD5) and unpack LibriSpeech subsets; return ``dest_dir/LibriSpeech``.
    Archives are deleted once unpacked."""
    from asr.download import download, extract

    dest_dir = Path(dest_dir)
    for subset in subsets:
        if subset not in LIBRISPEECH_SHA256:
            raise PrepareError(f"unknown LibriSpeech subset {subset!r}; expected one of {', '.join(LIBRISPEECH_SUBSETS)}")
        if (dest_dir / f".{subset}.tar.gz.extracted").exists():
            continue
        archive = download(url.format(subset=subset), dest_dir / f"{subset}.tar.gz", sha256=LIBRISPEECH_SHA256[subset],
                           md5=LIBRISPEECH_MD5[subset])
        extract(archive, dest_dir)
        archive.unlink()
    return dest_dir / "LibriSpeech"
