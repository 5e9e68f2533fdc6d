"""Turns Catch2's closing summary (read from stdin) into the line "N passed, N failed"."""
import re
import sys

text = sys.stdin.read()
m = re.search(r"test cases:\s+(\d+)\s+\|\s+(\d+) passed\s+\|\s+(\d+) failed", text)
if m:
    print(f"{m.group(2)} passed, {m.group(3)} failed")
else:
    m = re.search(r"All tests passed \(\d+ assertions? in (\d+) test cases?\)", text)
    print(f"{m.group(1)} passed, 0 failed" if m else "0 passed, 1 failed")
