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

from .bundle import BundleError
from .cli import refuse
from .errors import PosetokError
from .serve_cli import add_server_arguments
from .serving.bench import serve_bench
from .serving.repository import Batching
from .serving.server import ServerOptions, ServingError, find_serving_env

FAILED = 3  # the exit status when the server refused or failed requests

EPILOG = (f"Rates and latencies count answered requests only. Requests the server refuses (a full queue: "
          f"--max-queue-size) or fails are counted per point ('failed' in the table and in --json, with the first "
          f"one's message); when any failed, the batching speedup of the points concerned is left out (null), a "
          f"note goes to stderr and the exit status is {FAILED}, the results still printed. Exit status: 0 every "
          f"request answered; 1 a server or perf_analyzer failed; 2 bad arguments or bundle; {FAILED} some "
          f"requests failed.")


def main(argv: list[str], prog: str = "posetok serve-bench") -> int:
    """Run ``posetok serve-bench``.

    Args:
        argv: the arguments after ``serve-bench``.
        prog: the program name for messages.

    Returns:
        The exit status: 0, 1 (a server or perf_analyzer failed), 2 (bad
        arguments or bundle) or ``FAILED`` (some requests failed).
    """
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0], epilog=EPILOG)
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
    if args.interval_ms < 1:
        ap.error(f"--interval-ms must be >= 1, got {args.interval_ms}")
    try:
        options = ServerOptions(batching=Batching(True, args.max_batch, args.max_queue_delay_us, args.max_queue_size),
                                instances=args.instances, precision=args.precision, num_threads=args.num_threads)
        env = find_serving_env(args.env)
    except (ValueError, PosetokError) as exc:  # --max-batch 0, --instances 0, no serving environment
        return refuse(prog, str(exc))
    try:
        result = serve_bench(args.bundle, options, env, concurrencies, interval_ms=args.interval_ms, tool=args.tool,
                             progress=lambda line: print(line, file=sys.stderr if args.json else sys.stdout,
                                                         flush=True))
    except BundleError as exc:  # an unreadable bundle, or no graphs in --precision (before any server)
        return refuse(prog, str(exc))
    except (ServingError, RuntimeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(f"tool {result['tool']}; startup {result['startup_s']} s; dynamic batching speedup at the highest "
              f"concurrency: {result['batching_speedup']}")
    if result["failed"]:
        failing = [p for p in result["points"] if p["failed"]]
        print(f"{prog}: {result['failed']} requests failed in {len(failing)} of {len(result['points'])} points "
              f"(first: {failing[0]['failure']}); rates and latencies count answered requests only and the "
              f"speedup is left out where its points had failures", file=sys.stderr)
        return FAILED
    return 0
