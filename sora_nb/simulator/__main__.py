"""``python -m sora_nb.simulator [options]``: serve the simulator on a loopback port."""

from __future__ import annotations

import argparse
import sys

from ._serve import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m sora_nb.simulator", description="Serve the sora_nb Videos API simulator."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
