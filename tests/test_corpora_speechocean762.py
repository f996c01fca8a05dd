"""asr.corpora.speechocean762: the download's content check, on a generated archive."""

from __future__ import annotations

import tarfile

import pytest

from asr.corpora import speechocean762
from asr.corpora.common import PrepareError


def test_download_speechocean762_checks_the_transcripts(tmp_path):
    src = tmp_path / "speechocean762"
    for split in ("train", "test"):
        (src / split).mkdir(parents=True)
        (src / split / "text").write_text("000010011\tWE CALL IT BEAR\n")
        (src / split / "utt2spk").write_text("000010011 0001\n")
        (src / split / "wav.scp").write_text("000010011\tWAVE/SPEAKER0001/000010011.WAV\n")
    archive = tmp_path / "so.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="speechocean762")
    with pytest.raises(PrepareError, match="train/text does not match"):
        speechocean762.download_speechocean762(tmp_path / "dl", url=archive.as_uri())
    assert speechocean762.table_digest(src / "train" / "text") == speechocean762.table_digest(src / "test" / "text")
