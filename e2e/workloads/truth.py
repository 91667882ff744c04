"""Ground truth for tracecam's end-to-end tests: a serving thread's own
account of one request, printed on stdout once its response is written.

    TRUTH trace=<trace id> tid=<tid> cpu_ns=<thread CPU clock>
          runq_ns=<run delay> wall_ns=<CLOCK_MONOTONIC> [key=value ...]

cpu_ns is the kernel's CPU clock of the thread (CLOCK_THREAD_CPUTIME_ID: it
leaves out time a hypervisor stole from the vCPU), runq_ns the time the
thread was runnable but waiting for a CPU (run_delay in
/proc/thread-self/schedstat), both taken as differences between start() and
emit(). A test compares a profile's figures with these, not with what the
workload was asked to do.
"""

import sys
import threading
import time

_LOCK = threading.Lock()


def clocks():
    """(CPU ns, run-delay ns or -1, monotonic ns) of the calling thread."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            runq = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        runq = -1
    return time.thread_time_ns(), runq, time.monotonic_ns()


def start():
    return clocks()


def trace_of(traceparent):
    """The trace ID of a W3C traceparent header, or None."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) >= 2 and len(parts[1]) == 32 else None


def emit(trace, begin, **extra):
    """Print the TRUTH line of trace, measured since begin (from start())."""
    if not trace or begin is None:
        return
    cpu, runq, wall = clocks()
    fields = ["TRUTH trace=%s" % trace, "tid=%d" % threading.get_native_id(),
              "cpu_ns=%d" % (cpu - begin[0]),
              "runq_ns=%d" % (runq - begin[1] if runq >= 0 and begin[1] >= 0 else -1),
              "wall_ns=%d" % (wall - begin[2])]
    fields += ["%s=%s" % kv for kv in sorted(extra.items())]
    with _LOCK:
        sys.stdout.write(" ".join(fields) + "\n")
        sys.stdout.flush()


class HandlerMixin:
    """For http.server handlers: a TRUTH line per request that carried a
    traceparent, from the read of its request line to its answer."""

    def parse_request(self):
        # The request line has just been read: the truth starts here.
        self._truth_start = start()
        return super().parse_request()

    def handle_one_request(self):
        self._truth_start = None
        super().handle_one_request()
        if self._truth_start is not None and getattr(self, "headers", None) is not None:
            emit(trace_of(self.headers.get("traceparent")), self._truth_start)
