"""posetok serve: the bundle's encoder and decoder on NVIDIA Triton Inference Server.

Starts the tritonserver bundled with nvidia-pytriton (from the serving
environment ``.venv-serve`` that ``make setup`` builds) on a generated
Python-backend model repository; each model runs the posetok runtime on the
bundle. Binds 127.0.0.1 unless --host says otherwise. Ctrl-C or SIGTERM
shuts it down cleanly (in-flight requests finish, no process or shared
memory is left behind).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import checks
from .bundle import PRECISIONS, BundleError
from .cli import refuse
from .errors import PosetokError
from .serving.models import MODELS
from .serving.repository import Batching
from .serving.server import ServerOptions, ServingError, TritonServer, find_serving_env


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: a free one).

    Args:
        text: the argument.

    Returns:
        The port.

    Raises:
        argparse.ArgumentTypeError: not an integer in 0..65535 (tritonserver would
            take 70000 as 4464 and wait forever on -1).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be an integer, got {text!r}") from None
    try:
        return checks.port(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_server_arguments(ap: argparse.ArgumentParser) -> None:
    """The options ``posetok serve`` and ``posetok serve-bench`` share.

    Args:
        ap: the parser to extend.
    """
    ap.add_argument("--max-batch", type=int, default=64, help="largest batch one execution runs (default 64)")
    ap.add_argument("--max-queue-delay-us", type=int, default=500,
                    help="how long dynamic batching waits to fill a batch, in microseconds (default 500)")
    ap.add_argument("--max-queue-size", type=int, default=256,
                    help="requests queued beyond this are refused with 503 / UNAVAILABLE (default 256)")
    ap.add_argument("--instances", type=int, default=1, help="model instances per model, >= 1 (default 1)")
    ap.add_argument("--precision", default="fp32", choices=PRECISIONS, help="which graphs of the bundle to serve")
    ap.add_argument("--num-threads", type=int, default=1, help="threads per runtime session (default 1)")
    ap.add_argument("--env", default=None, help="the serving venv (default: $POSETOK_SERVE_ENV or .venv-serve)")


def main(argv: list[str], prog: str = "posetok serve") -> int:
    """Run ``posetok serve``.

    Args:
        argv: the arguments after ``serve``.
        prog: the program name for messages.

    Returns:
        The exit status.
    """
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                 epilog="models: " + "; ".join(f"{m.name}: {m.description}" for m in MODELS))
    ap.add_argument("bundle", help="bundle folder made by 'posetok export'")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0: all)")
    for flag, default, what in (("--http-port", 8000, "KServe v2 HTTP"), ("--grpc-port", 8001, "KServe v2 gRPC"),
                                ("--metrics-port", 8002, "Prometheus metrics")):
        ap.add_argument(flag, type=port_number, default=default, help=f"{what} port (default {default}; 0: a free one)")
    ap.add_argument("--no-dynamic-batching", action="store_true", help="run each request on its own")
    ap.add_argument("--public-key", help="verify the bundle's signature with this public key before serving")
    ap.add_argument("--flip-test", action="store_true",
                    help="posetok_estimate: also run each crop's mirror image and average the two estimates")
    ap.add_argument("--shift-test", action="store_true",
                    help="posetok_estimate: also run two crops moved by a pixel or two and average the three "
                         "estimates")
    add_server_arguments(ap)
    args = ap.parse_args(argv)
    try:
        options = ServerOptions(
            host=args.host, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
            batching=Batching(not args.no_dynamic_batching, args.max_batch, args.max_queue_delay_us,
                              args.max_queue_size),
            instances=args.instances, precision=args.precision, num_threads=args.num_threads,
            flip_test=args.flip_test, shift_test=args.shift_test)
        server = TritonServer(args.bundle, options, find_serving_env(args.env), public_key=args.public_key)
    # BundleError (also: no graphs in --precision) is a ValueError, as are out-of-range numbers
    # (--max-batch 0, --instances 0); signature errors are PosetokErrors
    except (ValueError, PosetokError) as exc:
        return refuse(prog, str(exc))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        o = server.options
        print(f"{prog}: ready in {server.startup_s:.1f} s: models {', '.join(server.models)}; "
              f"HTTP {o.host}:{o.http_port}, gRPC {o.host}:{o.grpc_port}, metrics {o.host}:{o.metrics_port}/metrics; "
              f"dynamic batching {'on' if o.batching.enabled else 'off'} (max batch {o.batching.max_batch_size}); "
              f"Ctrl-C stops", flush=True)
        while not stop.is_set():
            if server.process.poll() is not None:
                print(f"{prog}: tritonserver exited with status {server.process.returncode}; its log ends:\n"
                      f"{server.log_tail()}", file=sys.stderr)
                return 1
            stop.wait(0.5)
        print(f"{prog}: shutting down", flush=True)
        return 0
    except (ServingError, BundleError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        code = server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if code not in (None, 0):
            print(f"{prog}: tritonserver exited with status {code}", file=sys.stderr)
