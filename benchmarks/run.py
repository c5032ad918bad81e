"""`make bench`: run every benchmark and print its table."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    for name in ("calls.py", "codecs.py", "hd_voice.py"):
        print(f"== {name} ==", flush=True)
        levels = os.environ.get("BENCH_LEVELS", "").split() if name == "calls.py" else []
        sys.argv = [str(HERE / name), *levels]
        runpy.run_path(str(HERE / name), run_name="__main__")
        print(flush=True)
