"""Command-line tool (placeholder until the foundation lands)."""

import sys


def main(argv=None) -> int:
    print("anchorsr: not yet implemented", file=sys.stderr)
    return 2
