"""Killed and surviving mutants per module, from ``mutmut results --all true`` (make mutate)."""

from __future__ import annotations

import collections
import re
import subprocess
import sys


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True,
                         text=True).stdout
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, status in re.findall(r"^\s*([\w.]+)__mutmut_\d+: (\w[\w ]*)$", out, re.M):
        module = name.rsplit(".", 1)[0]
        counts[module][status.strip()] += 1
    if not counts:
        print("no mutation results: run make mutate", file=sys.stderr)
        return 1
    print(f"{'module':<20} {'killed':>7} {'survived':>9} {'other':>6} {'score':>7}")
    total = collections.Counter()
    for module in sorted(counts):
        c = counts[module]
        total.update(c)
        other = sum(c.values()) - c["killed"] - c["survived"]
        print(f"{module:<20} {c['killed']:>7} {c['survived']:>9} {other:>6} {c['killed'] / sum(c.values()):>7.1%}")
    other = sum(total.values()) - total["killed"] - total["survived"]
    print(f"{'all':<20} {total['killed']:>7} {total['survived']:>9} {other:>6} "
          f"{total['killed'] / sum(total.values()):>7.1%}")
    print("surviving mutants: .venv/bin/mutmut results; one in full: .venv/bin/mutmut show NAME")
    return 0


if __name__ == "__main__":
    sys.exit(main())
