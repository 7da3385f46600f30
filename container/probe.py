"""HTTP probes that container/test.sh runs against the running image.

`first-prediction` times a cold start; `drain` proves in-flight requests survive SIGTERM.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
BATCH_SIZE = 10_000


def running(container: str) -> bool:
    """Whether podman still reports the container as running."""
    state = subprocess.run(
        ["podman", "container", "inspect", "--format", "{{.State.Running}}", container],
        capture_output=True,
        text=True,
    )
    return state.stdout.strip() == "true"


def first_prediction(port: int, container: str, since: float, deadline: float) -> int:
    """Poll POST /predict until it answers; print the seconds since `since` (a Unix time)."""
    body = json.dumps(SETOSA).encode()
    until = time.monotonic() + deadline
    checked = time.monotonic()
    while time.monotonic() < until:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            status, payload = response.status, response.read()
        except OSError:
            if time.monotonic() - checked > 1:  # a crashed boot fails now, not at the deadline
                if not running(container):
                    print("the container exited before answering", file=sys.stderr)
                    return 1
                checked = time.monotonic()
            time.sleep(0.02)
            continue
        finally:
            conn.close()
        if status != 200 or json.loads(payload) != {"prediction": 0}:
            print(f"first prediction answered {status}: {payload[:200]!r}", file=sys.stderr)
            return 1
        print(f"{time.time() - since:.2f}")
        return 0
    print(f"no prediction within {deadline:.0f} s", file=sys.stderr)
    return 1


def accept_queue(pid: int) -> int:
    """Connections waiting in the listen backlog of the network namespace of process `pid`."""
    waiting = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if fields[3] == "0A":  # LISTEN, whose rx_queue is its accept queue
                        waiting += int(fields[4].split(":")[1], 16)
        except FileNotFoundError:
            continue
    return waiting


def drain(port: int, requests: int, container: str, grace: float) -> int:
    """SIGTERM the container while `requests` batch POSTs are half uploaded; all must succeed.

    Sending half of each body before the signal and the rest after it makes "in flight"
    certain rather than a race with a fast prediction: each worker has accepted its request
    and must read, predict and answer it after SIGTERM, then exit within Cloud Run's grace.
    """
    body = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * BATCH_SIZE}).encode()
    half = len(body) // 2
    conns = []
    for _ in range(requests):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=grace)
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body[:half])
        conns.append(conn)
    # A connection still in the backlog is not in flight: gunicorn resets it at shutdown.
    state = ["podman", "container", "inspect", "--format", "{{.State.Pid}}", container]
    pid = int(subprocess.run(state, check=True, capture_output=True, text=True).stdout)
    until = time.monotonic() + 5
    while (waiting := accept_queue(pid)) and time.monotonic() < until:
        time.sleep(0.05)
    if waiting:
        print(f"{waiting} of {requests} requests found no free worker", file=sys.stderr)
        return 1

    subprocess.run(
        ["podman", "kill", "--signal", "TERM", container], check=True, stdout=subprocess.DEVNULL
    )
    signalled = time.monotonic()
    time.sleep(1.0)  # gunicorn's master has passed SIGTERM on to the workers

    answered = 0
    for conn in conns:
        try:
            conn.send(body[half:])
            response = conn.getresponse()
            payload = response.read()
        except OSError as exc:
            print(f"in-flight request failed after SIGTERM: {exc!r}", file=sys.stderr)
            continue
        finally:
            conn.close()
        predictions = json.loads(payload).get("predictions") if response.status == 200 else None
        if predictions == [0] * BATCH_SIZE:
            answered += 1
        else:
            print(f"in-flight request answered {response.status}", file=sys.stderr)

    left = max(grace - (time.monotonic() - signalled), 0.1)
    try:
        waited = subprocess.run(
            ["podman", "wait", container], check=True, capture_output=True, text=True, timeout=left
        )
    except subprocess.TimeoutExpired:
        print(f"still running {grace:.0f} s after SIGTERM", file=sys.stderr)
        return 1
    code = int(waited.stdout.strip())
    elapsed = time.monotonic() - signalled
    print(
        f"{answered}/{requests} in-flight {BATCH_SIZE}-instance requests answered 200 after "
        f"SIGTERM; exited {code} {elapsed:.1f} s after SIGTERM (limit {grace:.0f} s)"
    )
    return 0 if answered == requests and code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    first = commands.add_parser("first-prediction", help="time a cold start")
    first.add_argument("--port", type=int, required=True)
    first.add_argument("--container", required=True)
    first.add_argument("--since", type=float, required=True, help="Unix time of `podman run`")
    first.add_argument("--deadline", type=float, default=60.0)
    stop = commands.add_parser("drain", help="SIGTERM with requests in flight")
    stop.add_argument("--port", type=int, required=True)
    stop.add_argument("--requests", type=int, required=True)
    stop.add_argument("--container", required=True)
    stop.add_argument("--grace", type=float, default=10.0, help="Cloud Run's SIGTERM grace")
    args = parser.parse_args()
    if args.command == "first-prediction":
        return first_prediction(args.port, args.container, args.since, args.deadline)
    return drain(args.port, args.requests, args.container, args.grace)


if __name__ == "__main__":
    sys.exit(main())
