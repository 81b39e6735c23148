"""python -m bench.faults: the same as `python -m bench faults`."""

import argparse

from bench.faults import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m bench.faults")
add_arguments(parser)
raise SystemExit(run(parser.parse_args()))
