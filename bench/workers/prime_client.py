#!/usr/bin/env python3
"""A benchmark client in Python: Debian's python3-grpcio (gRPC C core), one
channel calling bench.v1.Prime/IsPrime, for the xDS variants of issue 13.
Stub-free like test/support/xds_echo_client.py: PrimeRequest{uint64 number=1}
and PrimeReply{bool prime=1; string served_by=2} are encoded by hand, so no
protoc is needed.

Speaks the protocol of the Node workers (bench/workers/prime-client.ts) as
line-delimited JSON: requests on stdin, replies and events on stdout; the
orchestrator's Worker.startPython() is the other end. It exits when stdin
closes (the orchestrator went away).
  first        one call; replies {servedBy}
  batch n      closed loop, one call in flight; replies {latenciesUs: [...],
               elapsedMs, errors} (raw latencies: the orchestrator records
               them into the same HDR histogram the Node workers send)
  open-loop    calls on a fixed schedule at `rate` for `durationMs`, each
               call asynchronous (a future); replies {sent, ok, failed,
               errors, lateMs: {p50, p99, max}, cpuPct} as the Node worker

Usage: prime_client.py --target <target> --number <n>
  <target>: xds:///<group> (bootstrap from GRPC_XDS_BOOTSTRAP_CONFIG) or
  ipv4:127.0.0.1:<port> (straight to a replica).
"""
import json
import sys
import threading
import time

import grpc

METHOD = "/bench.v1.Prime/IsPrime"
DEADLINE_S = 30


def flag(name, default=None):
    if "--" + name in sys.argv:
        return sys.argv[sys.argv.index("--" + name) + 1]
    if default is None:
        raise SystemExit("missing --" + name)
    return default


def encode_varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf, i):
    shift = 0
    value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def served_by(reply):
    """PrimeReply.served_by (field 2, length-delimited); other fields skipped."""
    i = 0
    while i < len(reply):
        key, i = decode_varint(reply, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = decode_varint(reply, i)
            if field == 2:
                return reply[i:i + length].decode()
            i += length
        elif wire == 0:
            _, i = decode_varint(reply, i)
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return ""


_out_lock = threading.Lock()


def send(message):
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def percentile(sorted_values, p):
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


def describe(err):
    code = err.code() if hasattr(err, "code") else None
    name = code.name if code is not None else type(err).__name__
    details = err.details() if hasattr(err, "details") else str(err)
    return "%s: %s" % (name, details)


class Client:
    def __init__(self, target, number):
        self.channel = grpc.insecure_channel(target)
        self.unary = self.channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        # PrimeRequest: field 1, wire type 0 (varint).
        self.request = b"\x08" + encode_varint(number)

    def call(self):
        return served_by(self.unary(self.request, timeout=DEADLINE_S))

    def first(self, _m):
        return {"servedBy": self.call()}

    def batch(self, m):
        n = int(m["n"])
        latencies = []
        errors = 0
        start = time.perf_counter_ns()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            try:
                self.unary(self.request, timeout=DEADLINE_S)
                latencies.append(max(1, (time.perf_counter_ns() - t0 + 500) // 1000))
            except grpc.RpcError:
                errors += 1
        return {"latenciesUs": latencies, "elapsedMs": (time.perf_counter_ns() - start) / 1e6, "errors": errors}

    def open_loop(self, m):
        rate = float(m["rate"])
        duration_ms = float(m["durationMs"])
        period_s = 1.0 / rate
        total = int(-(-duration_ms // (period_s * 1000)))  # ceil
        lock = threading.Lock()
        done = threading.Condition(lock)
        state = {"ok": 0, "failed": 0, "in_flight": 0, "errors": []}

        def finished(future):
            err = future.exception()
            with lock:
                state["in_flight"] -= 1
                if err is None:
                    state["ok"] += 1
                else:
                    state["failed"] += 1
                    if len(state["errors"]) < 10:
                        state["errors"].append(describe(err))
                done.notify_all()

        late_us = []
        sent = 0
        cpu_before = time.process_time()
        begin = time.perf_counter()
        while True:
            now = time.perf_counter() - begin
            if now * 1000 >= duration_ms:
                break
            due = min(int(now / period_s) + 1, total)
            while sent < due:
                late_us.append(max(1, int(round((time.perf_counter() - begin - sent * period_s) * 1e6))))
                sent += 1
                with lock:
                    state["in_flight"] += 1
                future = self.unary.future(self.request, timeout=DEADLINE_S)
                future.add_done_callback(finished)
            time.sleep(max(0.001, begin + sent * period_s - time.perf_counter()))
        elapsed_s = time.perf_counter() - begin
        with lock:
            while state["in_flight"] > 0:
                done.wait()
        cpu_s = time.process_time() - cpu_before
        late_us.sort()
        return {
            "sent": sent,
            "ok": state["ok"],
            "failed": state["failed"],
            "errors": state["errors"],
            "lateMs": {"p50": percentile(late_us, 50) / 1000, "p99": percentile(late_us, 99) / 1000, "max": (late_us[-1] if late_us else 0) / 1000},
            "cpuPct": round(cpu_s / elapsed_s * 1000) / 10,
        }


def main():
    client = Client(flag("target"), int(flag("number")))
    handlers = {"first": client.first, "batch": client.batch, "open-loop": client.open_loop}
    send({"type": "ready", "clientId": None})
    for line in sys.stdin:
        if not line.strip():
            continue
        m = json.loads(line)
        handler = handlers.get(m.get("type"))
        try:
            if handler is None:
                raise ValueError("unknown request %s" % m.get("type"))
            reply = handler(m)
            reply.update({"id": m.get("id"), "type": "%s-done" % m["type"]})
        except Exception as err:  # a failed call in `first`, or a bad request: the orchestrator sees it
            reply = {"id": m.get("id"), "type": "error", "error": describe(err) if isinstance(err, grpc.RpcError) else str(err)}
        send(reply)
    client.channel.close()


if __name__ == "__main__":
    main()
