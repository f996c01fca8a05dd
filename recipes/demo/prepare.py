"""Synthesise the offline demo corpus with eSpeak NG.

The command line of :func:`asr.corpora.demo.prepare_demo` (word lists, voices and their
split live there), for recipes/demo/run.sh:

    python recipes/demo/prepare.py --out-dir exp/demo/data
"""

from __future__ import annotations

import argparse

from asr.corpora.demo import prepare_demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--n-dev", type=int, default=200)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    prepare_demo(a.out_dir, a.n_train, a.n_dev, a.n_test, a.seed)


if __name__ == "__main__":
    main()
