"""Random strings of common English words, a line each, for ``asr-prepare synthetic``:
eSpeak NG then speaks words the training transcripts may lack.

    python recipes/word_strings.py N OUT.txt [TOP] [SEED]

Each line holds 3 to 7 words drawn uniformly (with replacement) from the TOP most frequent
English words of the wordfreq package (default 10000, offline; normalised as transcripts
are, so numbers are spelt out and punctuation dropped). Deterministic for a SEED (default 5).
wordfreq's data are CC BY-SA 4.0 (see the README's LM section).
"""

from __future__ import annotations

import sys

import numpy as np

from asr.text import Vocabulary
from asr.utils import atomic_open


def main(argv: list[str]) -> int:
    if not 2 <= len(argv) <= 4 or not argv[0].isdigit():
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    import wordfreq

    n, out = int(argv[0]), argv[1]
    top = int(argv[2]) if len(argv) > 2 else 10000
    rng = np.random.default_rng(int(argv[3]) if len(argv) > 3 else 5)
    vocab = Vocabulary()
    words = sorted({w for w in map(vocab.normalize, wordfreq.top_n_list("en", top)) if w and " " not in w})
    with atomic_open(out, "w") as f:
        for _ in range(n):
            f.write(" ".join(rng.choice(words, rng.integers(3, 8))) + "\n")
    print(f"{out}: {n} lines from {len(words)} words")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
