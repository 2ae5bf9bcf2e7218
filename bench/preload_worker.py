"""A worker that imports its preload first: `python -m preload_worker --worker-id ID`.

The pool's exec path (zygote off) starts `python -m snakefleet.worker`, which
never imports the `preload` modules: a real exec-started worker pays for
`import dspy` on its first DSPy call instead. To measure what a fresh
interpreter costs when the preload *is* wanted, pool_bench --cold runs the
pool with worker_module=preload_worker (this file, found through
python_path=bench/): it imports the comma-separated modules named in
$SF_BENCH_PRELOAD, then runs the ordinary worker, which sends `ready`.
"""

from __future__ import annotations

import importlib
import os
import sys


def main() -> int:
    for name in os.environ.get("SF_BENCH_PRELOAD", "").split(","):
        if name.strip():
            importlib.import_module(name.strip())
    from snakefleet.worker import main as worker_main

    return worker_main()


if __name__ == "__main__":
    sys.exit(main())
