#!/usr/bin/env python3
"""Replays each file of a corpus once through a built fuzz target and reports
the slowest inputs and the worst time per byte: the check that no input
costs more than linear time. Usage: fuzz/timing.py TARGET [CORPUS_DIR]"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
target = sys.argv[1]
corpus = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "fuzz", "corpus", target)
binary = os.path.join(ROOT, "fuzz", "target", "x86_64-unknown-linux-gnu", "release", target)
files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))
times = []
for i in range(0, len(files), 400):
    chunk = files[i:i + 400]
    # -runs=10: each file ten times, libFuzzer reports the sum.
    out = subprocess.run([binary, "-runs=10", *chunk], capture_output=True, text=True).stderr
    for m in re.finditer(r"Executed (\S+) in (\d+) ms", out):
        times.append((int(m.group(2)) / 10, os.path.getsize(m.group(1)), m.group(1)))
times.sort(reverse=True)
total_ms = sum(t for t, _, _ in times)
total_b = sum(b for _, b, _ in times)
print(f"{target}: {len(times)} inputs, {total_b} bytes, {total_ms:.0f} ms in all")
for ms, b, f in times[:3]:
    print(f"  slowest: {ms:.1f} ms for {b} bytes ({os.path.basename(f)})")
big = [(ms / b * 1000, ms, b, f) for ms, b, f in times if b >= 4096]
if big:
    us, ms, b, f = max(big)
    print(f"  worst per byte (inputs >= 4 KiB): {us:.3f} us/byte ({ms:.1f} ms, {b} bytes, {os.path.basename(f)})")
