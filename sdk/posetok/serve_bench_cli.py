"""posetok serve-bench: Triton throughput and p50/p99 latency of encode and
decode at concurrency 1, 4 and 16, with dynamic batching on and off, in one run.

Starts ``posetok serve``'s server twice on free loopback ports (batching on,
then off) and measures with tritonclient gRPC clients in threads (or, --tool
perf_analyzer, with perf_analyzer from the serving environment).
"""
from __future__ import annotations

import argparse
import json
import sys

from .serve_cli import add_server_arguments
from .serving.bench import serve_bench
from .serving.repository import Batching
from .serving.server import ServerOptions, ServingError, find_serving_env


def main(argv: list[str], prog: str = "posetok serve-bench") -> int:
    """Run ``posetok serve-bench``.

    Args:
        argv: the arguments after ``serve-bench``.
        prog: the program name for messages.

    Returns:
        The exit status.
    """
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", help="bundle folder made by 'posetok export'")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated requests in flight (default 1,4,16)")
    ap.add_argument("--interval-ms", type=int, default=1500, help="one measurement window (default 1500)")
    ap.add_argument("--tool", choices=("perf_analyzer", "client"), default=None,
                    help="load generator: tritonclient gRPC threads (client, default) or perf_analyzer, which "
                         "gives up when its windows are not stable, as on a busy machine")
    ap.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    add_server_arguments(ap)
    args = ap.parse_args(argv)
    try:
        concurrencies = tuple(int(c) for c in args.concurrency.split(","))
        if min(concurrencies) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--concurrency {args.concurrency!r}: give positive integers separated by commas")
    try:
        options = ServerOptions(batching=Batching(True, args.max_batch, args.max_queue_delay_us, args.max_queue_size),
                                instances=args.instances, precision=args.precision, num_threads=args.num_threads)
        result = serve_bench(args.bundle, options, find_serving_env(args.env), concurrencies,
                             interval_ms=args.interval_ms, tool=args.tool,
                             progress=lambda line: print(line, file=sys.stderr if args.json else sys.stdout,
                                                         flush=True))
    except (ValueError, ServingError, RuntimeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"tool {result['tool']}; startup {result['startup_s']} s; dynamic batching speedup at the highest "
              f"concurrency: {result['batching_speedup']}")
    return 0
