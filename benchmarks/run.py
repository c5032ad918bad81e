"""`make bench`: run every benchmark and print its table."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    levels = os.environ.get("BENCH_LEVELS", "").split()
    # each benchmark with its own arguments: calls.py takes the load levels
    for name, args in (("calls.py", levels), ("dtls.py", []), ("call_setup.py", [])):
        print(f"== {name} ==", flush=True)
        sys.argv = [str(HERE / name), *args]
        runpy.run_path(str(HERE / name), run_name="__main__")
        print(flush=True)
