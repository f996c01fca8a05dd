"""speechocean762 (OpenSLR 101): non-native read English in Kaldi data directories.

The corpus holds ``train/`` and ``test/`` data directories (``wav.scp``, ``text``,
``utt2spk``): :func:`download_speechocean762` fetches and verifies it, :mod:`asr.kaldi`
reads them (``asr-prepare kaldi``) and ``asr-prepare split`` holds speakers out
(``recipes/speechocean762/run.sh``).
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.corpora.common import PrepareError
from asr.utils import atomic_open, text_lines

SPEECHOCEAN762_URL = "https://www.openslr.org/resources/101/speechocean762.tar.gz"
#: OpenSLR publishes no checksum for SLR101, so the download is verified by content:
#: sha256 over the sorted, whitespace-normalised lines of ``train/text`` and of
#: ``train/utt2spk`` (2,500 utterances, 125 speakers), and the test split's size.
SPEECHOCEAN762_TEXT_DIGESTS = {
    "train/text": "cd22a4293b268333ab835ba42b4f1f78277a89e9765e495c3ca26f0e017b37f3",
    "train/utt2spk": "e83546f91fa7444547b8c690ef004ad514eee1f7066d38ec87f7a6c847c84737",
}


def table_digest(path: str | os.PathLike) -> str:
    """sha256 of a text table's non-blank lines, whitespace-normalised and sorted."""
    import hashlib

    lines = sorted(" ".join(line.split()) + "\n" for line in text_lines(path, "table") if line.strip())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def download_speechocean762(dest_dir: str | os.PathLike, url: str = SPEECHOCEAN762_URL,
                            sha256: str | None = None) -> Path:
    """Download and unpack speechocean762 (OpenSLR 101); verify it; return the corpus folder."""
    from asr.download import download, extract

    dest_dir = Path(dest_dir)
    corpus = dest_dir / "speechocean762"
    if not (dest_dir / ".speechocean762.verified").exists():
        archive = download(url, dest_dir / "speechocean762.tar.gz", sha256=sha256)
        extract(archive, dest_dir)
        for name, digest in SPEECHOCEAN762_TEXT_DIGESTS.items():
            if not (corpus / name).is_file() or table_digest(corpus / name) != digest:
                raise PrepareError(f"{archive}: {name} does not match speechocean762 as published; "
                                   f"delete {dest_dir} and download again")
        if not (corpus / "test" / "wav.scp").is_file():
            raise PrepareError(f"{archive}: no test/wav.scp inside; delete {dest_dir} and download again")
        with atomic_open(dest_dir / ".speechocean762.verified") as f:
            f.write("ok\n")
    return corpus
