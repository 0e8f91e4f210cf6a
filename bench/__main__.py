"""``make bench``: run every benchmark and print one table of figures beside baselines."""

from __future__ import annotations

import importlib
import importlib.util

from bench.common import format_table

BENCHES = ("messaging", "replicas", "reshuffle", "tasks_api", "ledger", "analytics", "scaling",
           "platform", "scale", "signin")


def main() -> None:
    results = []
    for name in BENCHES:
        if importlib.util.find_spec(f"bench.{name}") is None:
            continue
        print(f"running bench.{name} ...", flush=True)
        results += importlib.import_module(f"bench.{name}").run()
    print()
    print(format_table(results))


if __name__ == "__main__":
    main()
