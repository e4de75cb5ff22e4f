#!/usr/bin/env python3
"""Code footprint of a booking flow: the 64-byte lines of machine code it runs, from callgrind.

    python3 benches/footprint.py DIR SMALL LARGE

DIR holds `untraced.SMALL`, `untraced.LARGE`, `traced.SMALL` and `traced.LARGE`, callgrind
outputs written with `--dump-instr=yes` by `benches/instructions.sh --flow` (SMALL and LARGE
flows of the same binary). A line counts for a side when the instructions in it ran at least
once per flow between the two runs (LARGE - SMALL times), so start-up code drops out. Prints
each side's lines per flow and how many lines only the traced flow runs.

Why lines and not instructions: the flow runs about half a megabyte of distinct code per flow,
far more than the instruction cache holds, so each line it touches is fetched again every
flow; on the machine in BENCHMARKS.md a line of new code costs a flow more than its
instructions suggest (benches/NOTES.md, item 11). callgrind's own tools report instructions
per function, not distinct lines, hence this reader of its output format
(https://valgrind.org/docs/manual/cl-format.html).
"""

import collections
import os
import sys


def lines_run(path):
    """Instructions executed per 64-byte line, keyed by (object file, line address)."""
    counts = collections.Counter()
    objects = {}
    obj = None
    last = 0
    skip_next = False
    with open(path) as f:
        for line in f:
            head = line[:1]
            if head in "0123456789+-*":
                fields = line.split()
                pos = fields[0]
                if pos.startswith("0x"):
                    addr = int(pos, 16)
                elif pos[0] in "+-":
                    addr = last + int(pos, 0)
                elif pos == "*":
                    addr = last
                else:
                    addr = int(pos)
                last = addr
                # The line after `calls=` is the call's inclusive cost, not this line's own.
                if skip_next:
                    skip_next = False
                    continue
                if len(fields) > 2:
                    counts[(obj, addr // 64)] += int(fields[2])
            elif line.startswith("calls="):
                skip_next = True
            elif line.startswith(("ob=", "cob=")):
                # `ob=(3) /path` names object 3; a later `ob=(3)` refers back to it.
                ref, _, name = line.partition("=")[2].strip().partition(" ")
                if name:
                    objects[ref] = name
                if line.startswith("ob="):
                    obj = objects.get(ref, ref)
    return counts


def per_flow_lines(directory, side, small, large):
    big = lines_run(os.path.join(directory, f"{side}.{large}"))
    little = lines_run(os.path.join(directory, f"{side}.{small}"))
    flows = large - small
    return {key for key, n in big.items() if n - little.get(key, 0) >= flows}


def main(argv):
    if len(argv) != 4:
        sys.exit("usage: python3 benches/footprint.py DIR SMALL LARGE")
    directory, small, large = argv[1], int(argv[2]), int(argv[3])
    if large <= small:
        sys.exit(f"footprint.py: LARGE ({large}) must exceed SMALL ({small})")
    try:
        untraced = per_flow_lines(directory, "untraced", small, large)
        traced = per_flow_lines(directory, "traced", small, large)
    except OSError as e:
        sys.exit(f"footprint.py: {e.filename}: {e.strerror}")
    only = len(traced - untraced)
    print(f"code lines / flow: untraced {len(untraced)}, traced {len(traced)}; "
          f"only the traced flow runs {only} ({only * 64 / 1024:.1f} KiB)")


if __name__ == "__main__":
    main(sys.argv)
