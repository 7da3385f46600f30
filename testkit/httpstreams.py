"""HTTP/1.1 request streams for property tests, and h11's reading of them as the oracle.

tests/unit/server/test_framing.py holds webapp/server/framing.py to h11's decisions on these
streams, and tests/service/test_worker.py sends them to a real gunicorn worker. h11 is an
independent HTTP/1.1 implementation: nothing here shares code with the framer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import h11
from hypothesis import strategies as st

from webapp.server.framing import Framer, Limits, Refused

LIMITS = Limits(head=700, body=300, chunk_line=700)  # small, so that tests reach them


@dataclass(frozen=True)
class Decision:
    """What a framer made of a stream's first request."""

    kind: str  # "end", "more" (needs more bytes) or "refused"
    end: int = -1
    body: int = -1
    keep_alive: bool = False  # the connection may carry another request after this one
    status: int = 0


def ours(data: bytes, cuts: list[int] | None = None, limits: Limits = LIMITS) -> Decision:
    """The framer's decision, fed `data` in pieces ending at `cuts` (then the rest)."""
    framer = Framer(limits)
    buffer = bytearray()
    for cut in [*sorted(cuts or []), len(data)]:
        buffer += data[len(buffer) : max(cut, len(buffer))]
        try:
            end = framer.end(buffer)
        except Refused as refusal:
            return Decision("refused", status=refusal.status)
        if end is not None:
            assert framer.head is not None
            return Decision("end", end, framer.body_size, framer.head.keep_alive)
    return Decision("more")


def h11s(data: bytes, limits: Limits = LIMITS) -> tuple[Decision, Any]:
    """h11's decision as a server, and the request head it parsed, if any."""
    if not data:  # to h11, receiving no bytes means the connection closed
        return Decision("more"), None
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.head)
    conn.receive_data(data)
    request, body = None, 0
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return Decision("more"), request
            if event is h11.PAUSED:
                raise AssertionError(f"h11 paused: {data!r}")
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                end = len(data) - len(conn.trailing_data[0])
                return Decision("end", end, body, conn.their_state is h11.DONE), request
    except h11.RemoteProtocolError as exc:
        return Decision("refused", status=exc.error_status_hint), request


def stricter_rules(
    data: bytes, h11_decision: Decision, request: Any, limits: Limits = LIMITS
) -> dict[str, int]:
    """The framer's documented stricter rules these bytes break, with the status each answers:
    what the framer must refuse although h11 reads it (`h11_decision`, with `request`, the
    head h11 parsed, if any)."""
    rules = {}
    blank = re.search(rb"\n\r?\n", data)
    if (blank.end() if blank else len(data)) > limits.head:
        rules["head over the limit"] = 431
    if blank and re.search(rb"\n[ \t]", data[: blank.end()]):
        rules["obsolete line folding in the head"] = 400
    if request is None:
        return rules
    names = [name for name, _ in request.headers]
    if {b"content-length", b"transfer-encoding"} <= set(names):
        rules["both Content-Length and Transfer-Encoding"] = 400
    if request.http_version not in (b"1.0", b"1.1"):
        rules["HTTP version"] = 400
    lengths = [int(value) for name, value in request.headers if name == b"content-length"]
    if lengths and lengths[0] > limits.body:
        rules["body over the limit"] = 413
    if b"transfer-encoding" in names and h11_decision.kind == "end":
        if h11_decision.body > limits.body:
            rules["chunked body over the limit"] = 413
        last_chunk = list(re.finditer(rb"\n0+(?:;[^\n]*)?[ \t]*\r\n", data[: h11_decision.end]))
        trailers = data[last_chunk[-1].end() : h11_decision.end] if last_chunk else b""
        if re.search(rb"(?:^|\n)[ \t]", trailers):
            rules["obsolete line folding in the trailers"] = 400
    return rules


def agree(data: bytes, limits: Limits = LIMITS) -> Decision:
    """Check the framer's decision on `data` against h11's; return the framer's."""
    mine = ours(data, limits=limits)
    theirs, request = h11s(data, limits)
    assert mine.kind != "refused" or mine.status in (400, 413, 431, 501), mine
    if theirs.kind == "refused":
        if mine.kind == "more":  # h11 checks each byte after a chunk; the framer both at once
            assert ours(data + b"\x00", limits=limits).kind == "refused", f"h11 refused {data!r}"
        else:  # they may name different faults first (h11 checks Transfer-Encoding first)
            assert mine.kind == "refused", f"framer {mine}, h11 refused: {data!r}"
        return mine
    rules = stricter_rules(data, theirs, request, limits)
    if rules:
        assert mine.kind == "refused", f"{sorted(rules)} but framer {mine}: {data!r}"
        assert mine.status in rules.values(), f"{mine} for {sorted(rules)}: {data!r}"
        return mine
    chunked_arriving = (
        theirs.kind == "more"
        and request is not None
        and any(name == b"transfer-encoding" for name, _ in request.headers)
    )
    if mine == Decision("refused", status=413) and chunked_arriving:
        return mine  # the chunk sizes announced so far are over the limit; h11 has none
    assert mine == theirs, f"framer {mine}, h11 {theirs}: {data!r}"
    return mine


TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ODD_LENGTHS = [b"05", b" 5 ", b"5, 5", b"5,6", b"+5", b"-1", b"0x5", b"", b"9" * 25, b"0" * 30,
               b"\xb2", b"5 5", b"299", b"301"]  # fmt: skip


def pick(draw: st.DrawFn, odd: bool, usual: list[bytes], unusual: list[bytes]) -> bytes:
    """One of the usual values, or where this part of the request is the odd one, any."""
    return draw(st.sampled_from(usual + unusual if odd else usual))


@st.composite
def bodies(draw: st.DrawFn, odd: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Framing headers and a body: none, a Content-Length or chunks; odd ones if `odd`."""
    kind = draw(st.sampled_from(["none", "length", "chunked", *(["odd"] if odd else [])]))
    payload = draw(st.binary(max_size=40))
    if kind == "none":
        return [], b""
    if kind == "length":
        size = len(payload) + (draw(st.sampled_from([-1, 1, 500])) if odd else 0)
        return [(b"Content-Length", str(max(size, 0)).encode())], payload
    if kind == "odd":
        headers = [(b"Content-Length", draw(st.sampled_from(ODD_LENGTHS)))]
        headers = draw(st.sampled_from([headers, headers * 2, []]))
        headers += [(b"Transfer-Encoding", b"chunked")] * draw(st.integers(0, 2))
        return headers, payload
    coding = pick(draw, odd, [b"chunked"], [b"Chunked", b"gzip", b"chunked, chunked"])
    end = pick(draw, odd, [b"\r\n"], [b"\n"])
    out = b""
    for size in draw(st.lists(st.integers(1, 30), max_size=4)):
        extension = pick(draw, odd, [b"", b";a=b"], [b"; x", b";\r", b";" + b"e" * 40])
        spelled = pick(draw, odd, [b"%x" % size], [b"%X" % size, b"%03x" % size])
        chunk = draw(st.binary(min_size=size, max_size=size))
        out += spelled + extension + b"\r\n" + chunk + b"\r\n"
    trailers = pick(draw, odd, [b"", b"T: 1" + end], [b"Bad Line" + end, b" fold" + end])
    return [(b"Transfer-Encoding", coding)], out + b"0\r\n" + trailers + end


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One request: well-formed, or with one of its parts odd (lines, fields or framing)."""
    odd = draw(st.sampled_from([None, None, None, "line", "fields", "framing"]))
    end = pick(draw, odd == "line", [b"\r\n"], [b"\n"])
    method = pick(draw, odd == "line", [b"GET", b"POST", b"PUT", b"HEAD"], [b"M\xe9", b"G T"])
    target = pick(draw, odd == "line", [b"/predict", b"/health", b"/a?b=c"], [b"/x y", b"/\x7f"])
    version = pick(draw, odd == "line", [b"HTTP/1.1"] * 4 + [b"HTTP/1.0"], [b"HTTP/2.0", b"HTP/1"])
    hosts = int(pick(draw, odd == "fields", [b"1"], [b"0", b"2"]))
    headers = [(b"Host", b"127.0.0.1")] * hosts
    for _ in range(draw(st.integers(0, 3))):
        name = pick(draw, odd == "fields", [b"Connection", b"Expect", b"X-Any"], [b"Bad Name"])
        if odd == "fields" and draw(st.booleans()):
            name = draw(st.text(TOKEN, min_size=1, max_size=8)).encode()
        usual = [b"x", b"a b", b"", b"close", b"100-continue"]
        value = pick(draw, odd == "fields", usual, [b" padded ", b"\x80\xff", b"a\tb", b"\x00"])
        headers.append((name, value))
    framing, body = draw(bodies(odd == "framing"))
    headers = draw(st.permutations(headers + framing))
    separator = pick(draw, odd == "fields", [b": ", b":"], [b" : ", b":\t"])
    lines = [b" ".join([method, target, version])]
    lines += [name + separator + value for name, value in headers]
    return end.join(lines) + end + end + body


MUTATIONS = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"0", b"\x00", b"\r\n\r\n", b"chunked",
     b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffffffff"]
)  # fmt: skip


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Requests one behind the other, then mutated a few times."""
    data = bytearray(b"".join(draw(st.lists(requests(), min_size=1, max_size=3))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "replace", "repeat", "truncate"]))
        size = draw(st.integers(1, 8))
        if action == "cut":
            del data[at : at + size]
        elif action == "insert":
            data[at:at] = draw(MUTATIONS | st.binary(min_size=1, max_size=4))
        elif action == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "repeat":
            data[at:at] = data[at : at + size * 4]
        elif action == "truncate":
            del data[at:]
    return bytes(data)
