"""Fuzz every CLI command with mutated files and arguments; print the issue-10 table (tried / clean / failed).

    python bench/fuzz.py --per-command 50 --seed 1

The engine is ``tests/fuzzing.py`` (the suite's ``tests/test_fuzz.py`` runs a small campaign of it).
Each failure is printed with its command line and why, so it can be reproduced with the same seed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzzing import COMMANDS, make_corpus, run_campaign  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (the suite uses 0)")
    parser.add_argument("--per-command", type=int, default=50, help="cases per command")
    parser.add_argument("--train-cases", type=int, default=None, help="cases for train (slowest; default as others)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds before a case counts as hung")
    args = parser.parse_args()
    counts = dict.fromkeys(COMMANDS, args.per_command)
    if args.train_cases is not None:
        counts["train"] = args.train_cases
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="autoice-fuzz-") as tmp:
        corpus = make_corpus(Path(tmp))

        def show(o):
            if not o.clean:
                print(f"FAILED {o.case.command} ({o.case.what}): {o.why}\n    autoice {' '.join(o.argv)}", flush=True)

        campaign = run_campaign(corpus, args.seed, counts, timeout=args.timeout, progress=show)
    print(f"\nseed {args.seed}, {len(campaign.outcomes)} cases in {time.perf_counter() - t0:.0f} s\n")
    print(campaign.table())


if __name__ == "__main__":
    main()
