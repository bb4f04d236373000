"""Benchmark: the cost of signing and verifying one message (hlplay.protocol.signing).

Real NKey seeds, a deploy request and a final response of typical size. Per
message: canonical form alone, sign, verify, verify through a replay guard,
and what a 500-host fan-out adds (the controller signs one request and
verifies ~4 responses a host; each listener verifies one request and signs
its ~4 responses). Medians of several rounds; no target is asserted here
(bench/fanout.py measures the end-to-end figure).

    python bench/signing.py [--messages 5000] [--rounds 5] [--hosts 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import nacl.signing

from hlplay.auth.keys import generate
from hlplay.protocol.messages import DeployRequest, DeployResponse
from hlplay.protocol.signing import ReplayGuard, Signer, canonical, sign, verify

RESPONSES_PER_HOST = 4  # accepted, started, one progress batch, completed


def _request(i: int) -> dict[str, Any]:
    req = DeployRequest(
        action="switch", revision="main", reply_to=f"_INBOX.bench.{i}", id=f"req-{i:08d}"
    )
    doc: dict[str, Any] = json.loads(req.to_json())
    return doc


def _response(i: int) -> dict[str, Any]:
    resp = DeployResponse(
        hostname=f"host{i:04d}",
        status="completed",
        message="switched to generation 42",
        id=f"req-{i:08d}",
        extra={"action": "switch", "revision": "main", "generation": 42, "duration": 12.4},
    )
    doc: dict[str, Any] = json.loads(resp.to_json())
    return doc


def per_message(fn: Callable[[int], object], n: int, rounds: int) -> float:
    """Median seconds per call over ``rounds`` rounds of ``n`` calls."""
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=500)
    args = parser.parse_args()
    n, rounds = args.messages, args.rounds

    seed, public = generate()
    signer = Signer(seed)
    allowed = frozenset({public, generate()[1]})
    now = time.time()
    plain_requests = [_request(i) for i in range(n * rounds)]
    plain_responses = [_response(i) for i in range(n * rounds)]
    requests = [sign(doc, signer, now=now) for doc in plain_requests]
    responses = [sign(doc, signer, now=now) for doc in plain_responses]
    guard = ReplayGuard(capacity=n * rounds + 1)
    # the floor: ed25519 alone over the same bytes, with no JSON around it
    raw_key = nacl.signing.SigningKey.generate()
    raw_data = canonical(requests[0])
    raw_sig = raw_key.sign(raw_data).signature

    wire = len(json.dumps(requests[0]).encode())
    plain = len(json.dumps(plain_requests[0]).encode())
    print(f"request: {plain} bytes unsigned, {wire} bytes signed")

    rows = [
        ("ed25519 sign alone", per_message(lambda i: raw_key.sign(raw_data), n, rounds)),
        (
            "ed25519 verify alone",
            per_message(lambda i: raw_key.verify_key.verify(raw_data, raw_sig), n, rounds),
        ),
        ("canonical form (request)", per_message(lambda i: canonical(requests[i]), n, rounds)),
        (
            "sign request (Signer)",
            per_message(lambda i: sign(plain_requests[i], signer), n, rounds),
        ),
        (
            "sign request (seed each time)",
            per_message(lambda i: sign(plain_requests[i], seed), n, 1),
        ),
        ("verify request", per_message(lambda i: verify(requests[i], allowed, now=now), n, rounds)),
        (
            "verify request + replay guard",
            per_message(lambda i: verify(requests[i], allowed, now=now, guard=guard), n, rounds),
        ),
        ("sign response", per_message(lambda i: sign(plain_responses[i], signer), n, rounds)),
        (
            "verify response",
            per_message(lambda i: verify(responses[i], {public}, now=now), n, rounds),
        ),
    ]
    for name, seconds in rows:
        print(f"{name:32s} {seconds * 1e6:8.1f} µs")

    cost = dict(rows)
    controller = (
        cost["sign request (Signer)"] + args.hosts * RESPONSES_PER_HOST * cost["verify response"]
    )
    listener = cost["verify request + replay guard"] + RESPONSES_PER_HOST * cost["sign response"]
    print(
        f"fan-out to {args.hosts} hosts: controller {controller * 1e3:.1f} ms of CPU "
        f"({args.hosts * RESPONSES_PER_HOST} responses verified); "
        f"each listener {listener * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
