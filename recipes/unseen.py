"""WER on the test sentences that training never saw, beside the WER on those it did.

    python recipes/unseen.py REPORT.json TRAIN_MANIFEST[,MORE.jsonl]

REPORT is what ``asr-evaluate --report`` wrote; a sentence counts as seen when its
normalised reference equals a normalised training transcript. Where a read-speech corpus
repeats its prompts across speakers, an n-gram LM built from the training transcripts knows
those test sentences by heart: the unseen figure says what it does for new text.
(speechocean762's train split repeats none: its dev and test sentences are all unseen.)
"""

from __future__ import annotations

import json
import sys

from asr.data import read_manifests
from asr.metrics import error_rates
from asr.text import Vocabulary


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    report, train = argv
    vocab = Vocabulary()
    seen = {vocab.normalize(u.text) for u in read_manifests(train, check_files=False)}
    with open(report, encoding="utf-8") as f:
        utts = json.load(f)["utterances"]
    for name, keep in (("unseen sentences", False), ("seen sentences", True)):
        part = [u for u in utts if (vocab.normalize(u["reference"]) in seen) == keep]
        rates = error_rates([u["reference"] for u in part], [u["hypothesis"] for u in part])
        print(f"{name}: {rates.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
