"""Top functions of a py-spy raw profile (``py-spy record -f raw``): self and total samples.

Usage: ``python benchmarks/profile_top.py PROFILE.raw [N]``. Frames are grouped by function
and file (line numbers dropped); "self" counts samples where the function was running,
"total" samples where it was anywhere on the stack (once per sample).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = _FRAME_RE.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def summarize(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    return samples, own, total


def main() -> None:
    path, limit = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 20
    samples, own, total = summarize(path)
    print(f"{samples} samples")
    print("| self samples | total samples | self % | total % | function |")
    print("|---|---|---|---|---|")
    for name, count in own.most_common(limit):
        share, inclusive = 100 * count / samples, 100 * total[name] / samples
        print(f"| {count} | {total[name]} | {share:.1f} | {inclusive:.1f} | `{name}` |")


if __name__ == "__main__":
    main()
