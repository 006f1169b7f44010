"""Run every ``benchmarks/bench_*.py`` module's ``main()`` in turn (or only the ones named).

    python -m benchmarks                 # all
    python -m benchmarks events map      # bench_events and bench_map only

The quality runs train to a target and take longer; they are run on their own:
    python -m benchmarks.quality_banking77   # MiniLM on banking77, scored on all of test.csv
    python -m benchmarks.quality_sft         # SmolLM2 SFT: held-out loss and answers, base vs tuned
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    wanted = {name.removeprefix("bench_") for name in (sys.argv[1:] if argv is None else argv)}
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    unknown = wanted - {n.removeprefix("bench_") for n in names}
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(names)}")
        return 2
    failed = []
    for name in names:
        if wanted and name.removeprefix("bench_") not in wanted:
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        # each benchmark parses sys.argv itself (some take ``argv``, some don't): give it none
        saved, sys.argv = sys.argv, [name]
        try:
            importlib.import_module(f"{__package__}.{name}").main()
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        finally:
            sys.argv = saved
        print(f"== {name} done in {time.perf_counter() - start:.1f} s\n", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
