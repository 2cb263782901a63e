#!/usr/bin/env python3
"""A stock gRPC Python client (Debian's python3-grpcio, C core) calling
rebind.test.Echo/Unary through xDS: target xds:///<group>, bootstrap from
GRPC_XDS_BOOTSTRAP_CONFIG (made by `rebind xds-bootstrap`). No generated
stubs: the two messages are encoded by hand (field 1 text, field 2
served_by), so the test needs no protoc.

Usage: xds_echo_client.py <target> <calls> [<period_ms>]
Prints one JSON line: {"ok": n, "failed": n, "served": {"A": n, ...}, "errors": [...]}.
"""
import json
import sys
import time

import grpc


def encode_request(text):
    data = text.encode()
    return b"\x0a" + bytes([len(data)]) + data


def varint(buf, i):
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
    i = 0
    while i < len(reply):
        key, i = varint(reply, i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            length, i = varint(reply, i)
            if field == 2:
                return reply[i:i + length].decode()
            i += length
        elif wire == 0:
            _, i = varint(reply, i)
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return ""


def main():
    target, calls = sys.argv[1], int(sys.argv[2])
    period = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    channel = grpc.insecure_channel(target)
    unary = channel.unary_unary("/rebind.test.Echo/Unary", request_serializer=None, response_deserializer=None)
    result = {"ok": 0, "failed": 0, "served": {}, "errors": []}
    for n in range(calls):
        started = time.monotonic()
        try:
            reply = unary(encode_request("py%d" % n), timeout=10)
            who = served_by(reply)
            result["ok"] += 1
            result["served"][who] = result["served"].get(who, 0) + 1
        except grpc.RpcError as e:
            result["failed"] += 1
            if len(result["errors"]) < 5:
                result["errors"].append("%s: %s" % (e.code(), e.details()))
        if period > 0:
            time.sleep(max(0.0, period - (time.monotonic() - started)))
    channel.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
