"""gunicorn's worker for this service: requests are read whole, without blocking, then served.

gunicorn's sync worker reads a request while the process waits for it, so a client that sends
its headers or its body slowly holds a worker for as long as it likes, and a few such clients
hold them all; gunicorn assumes a buffering proxy in front, and `make run`, a plain container
or Vertex AI have none. This worker is that buffer: one selector loop per worker reads every
connection's requests, within deadlines for the headers and the body, frames them
(webapp/framing.py), and only a complete request reaches gunicorn's own parser and the app, one
at a time as in the sync worker; the answer is held until it is complete, then sent at once
(Outbox). After an answer, a connection the client keeps alive goes back
to the loop for its next request (pipelined ones are answered in order), until it idles past
the keep-alive deadline or reaches its request cap.

Whatever one connection sends or does, only that connection is closed: malformed framing gets
its 4xx, a reset or a half-closed socket ends that connection, and any unexpected error while
handling one connection is logged and closes it; the worker and its other connections go on.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
import select
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.base import Worker

from ..protocol.errors import error_body
from .framing import Framer, Limits, Refused

_WAKEUP = "wakeup"
# What gunicorn's parser refuses beyond the framing, answered with these statuses (else 400).
_REFUSED = {
    http.errors.LimitRequestLine: (414, "The request line is too long."),
    http.errors.LimitRequestHeaders: (431, "The request's header fields are too large."),
    http.errors.ExpectationFailed: (417, "Only the 100-continue expectation is understood."),
    http.errors.UnsupportedTransferCoding: (
        501,
        "Transfer-Encoding other than chunked is not supported.",
    ),
}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_EXPECT_FIELD = re.compile(rb"\nexpect:[^\n]*", re.IGNORECASE)  # up to its line's end, not past
_RECV = 256 * 1024


class SettingsSnapshot:
    """gunicorn's settings as this worker was forked with, read as plain attributes.

    gunicorn's Config resolves every setting through __getattr__ and a dict on each read, and
    its parser and environ read 18 of them per request: 12 µs of the 44 its parse and environ
    took for a single-row request in process. A worker's settings never change (a reload forks
    new workers). What the Config's class defines itself (its properties, such as is_ssl or
    worker_class, which loads the class a setting names) is read from the Config.
    """

    def __init__(self, cfg: Any) -> None:
        plain = {n: s.get() for n, s in cfg.settings.items() if not hasattr(type(cfg), n)}
        self.__dict__.update(plain)
        self._config = cfg

    def __getattr__(self, name: str) -> Any:  # only what the snapshot does not hold
        return getattr(self._config, name)


class Outbox:
    """A connection's socket as gunicorn's Response writes an answer to it: what it sends is
    held, and goes out in one non-blocking send once the answer is complete (send_held).

    gunicorn sends the head and the body apart, each through sendall, which polls first where
    the socket has a timeout: with the timeout set and cleared and the two sends corked into
    one segment, a single-row answer took eight system calls; now one. An answer the socket
    does not take at once (a large one, a slow reader) is finished blocking, within `timeout`
    for each write, as before. Anything else is the socket's own.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.held: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.held.append(data)

    def send_held(self) -> None:
        """Send what is held; raises OSError where the client is gone or stalls."""
        held, self.held = self.held, []
        data = held[0] if len(held) == 1 else b"".join(held)
        try:
            sent = self.sock.send(data) if data else 0
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._blocking(self.sock.sendall, memoryview(data)[sent:])

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """A file's bytes after what is held (socket.sendfile needs a blocking socket)."""
        self.send_held()
        sent: int = self._blocking(self.sock.sendfile, file, offset, count)
        return sent

    def _blocking(self, write: Any, *args: Any) -> Any:
        self.sock.settimeout(self.timeout)
        try:
            return write(*args)
        finally:
            self.sock.settimeout(0.0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@dataclass(eq=False)  # compared and hashed by identity: a set holds the open ones
class Connection:
    """A client connection: the bytes it sent that no answer has used yet, and its state."""

    sock: socket.socket
    addr: Any
    listener: socket.socket
    server: Any  # the listener's address, as the environ gives it
    deadline: float  # when the loop gives up on what it is waiting for
    framer: Framer
    fd: int = -1  # the socket's descriptor, kept: a closed socket's fileno() is -1
    data: bytearray = field(default_factory=bytearray)
    served: int = 0  # requests answered on this connection
    eof: bool = False  # the client has stopped sending
    closing: bool = False  # answered for the last time; draining what the client sends


def _without_expect(head: bytes) -> bytes:
    """A request's head without its Expect field. The loop has answered it (or the body came
    with the head); seeing it, gunicorn would write a second "100 Continue" before the answer."""
    return _EXPECT_FIELD.sub(b"", head)


def _refusal(status: int, message: str, request: bytes | bytearray) -> bytes:
    """A JSON error answer that closes the connection: in the Open Inference Protocol's shape
    where the request's bytes so far are for a /v2 path, only its head for a HEAD request."""
    target = bytes(request[: request.find(b"\n")]).split(b" ")[1:2]
    v2 = bool(target) and (target[0] == b"/v2" or target[0].startswith((b"/v2/", b"/v2?")))
    body = error_body(status, message, v2=v2)
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + (b"" if request.startswith(b"HEAD ") else body)


class Shares:
    """Each worker's count of connections, in memory that every worker shares: mapped in
    gunicorn's master when it imports this module, before it forks them. A worker writes only
    its own slot (its age, which gunicorn makes unique); an aligned 8-byte write is atomic, so
    a reader never sees half of one."""

    slots = 256

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 8 * self.slots)
        self.counts = memoryview(self._memory).cast("q")
        for slot in range(self.slots):
            self.counts[slot] = -1  # no worker

    def publish(self, age: int, count: int) -> None:
        self.counts[age % self.slots] = count

    def release(self, age: int) -> None:
        """Forget a worker that stops (gunicorn.conf.py's child_exit, for a killed one)."""
        self.counts[age % self.slots] = -1

    def fewest(self) -> int:
        """The fewest connections a worker holds."""
        return min((count for count in self.counts.tolist() if count >= 0), default=0)


SHARES = Shares()


class BufferingWorker(Worker):
    """A worker whose requests are read and framed by a selector loop before they are served."""

    cfg: Any  # gunicorn's Config; in the forked worker, a SettingsSnapshot of it

    header_timeout = 10.0  # from a request's first byte (or the accept) to its blank line
    body_timeout = 30.0  # from the end of the headers to the end of the body
    io_timeout = 10.0  # any one write once a request is being answered
    max_body = 2 * 1024 * 1024  # the app's MAX_CONTENT_LENGTH: beyond it, a 413
    budget = 64 * 1024 * 1024  # bytes buffered at once, over all of a worker's connections
    linger = 2.0  # how long an answered client may keep sending before it is cut off
    requests_per_connection = 1000  # then the connection closes: no client holds a worker's ear
    balance_interval = 0.005  # seconds until a worker that left connections waiting looks again
    patience = 0.05  # seconds it leaves them to less loaded workers before it takes them
    rebalance_interval = 0.1  # seconds between looks at whether it holds far more than another

    @classmethod
    def configured(cls, **settings: float) -> type[BufferingWorker]:
        """This class with other limits (gunicorn.conf.py reads them from the environment)."""
        unknown = set(settings) - set(vars(BufferingWorker))
        if unknown:
            raise TypeError(f"unknown settings {sorted(unknown)}")
        return type(cls.__name__, (cls,), settings)

    def init_process(self) -> None:
        self.poller = select.epoll()
        self.watched: dict[int, Any] = {}  # descriptor -> a Connection, a listener or _WAKEUP
        self.addresses: dict[Any, Any] = {}  # each listener's getsockname(), asked once
        self.open: set[Connection] = set()
        self.ready: deque[Connection] = deque()  # holding the bytes of a next request
        self.buffered = 0
        self.next_deadline = float("inf")  # no connection's deadline comes before this
        self.balance_at = 0.0  # when to look for new connections even if none was announced
        self.left_at: float | None = None  # since when it leaves waiting ones to the others
        self.surplus = 0  # kept-alive connections to close, so that their clients go elsewhere
        self.rebalance_at = 0.0
        self.looked = (0, 0)  # this worker's connections and the fewest, at the last look
        cfg = self.cfg
        self.limits = Limits(
            head=cfg.limit_request_line
            + cfg.limit_request_fields * (cfg.limit_request_field_size + 2)
            + 4,
            body=int(self.max_body),
        )
        self.keepalive = float(cfg.keepalive)  # idle seconds between requests; 0: none
        self.cfg = SettingsSnapshot(cfg)
        super().init_process()

    def run(self) -> None:
        if self.cfg.is_ssl:
            raise RuntimeError("BufferingWorker serves plain HTTP; TLS ends at the front end")
        for listener in self.sockets:
            listener.setblocking(False)
            # Edge-triggered, and not exclusive: every worker hears of every new connection
            # once, and only the least loaded take it (_take_new).
            self.poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLET)
            self.watched[listener.fileno()] = listener
        SHARES.publish(self.age, 0)
        self.poller.register(self.PIPE[0], select.EPOLLIN)
        self.watched[self.PIPE[0]] = _WAKEUP
        accepting = True
        stop_by = float("inf")
        beat = 0.0
        while self.alive or (self.open and time.monotonic() < stop_by):
            if time.monotonic() - beat >= 1.0:  # the arbiter's heartbeat, a syscall: once a second
                self.notify()
                beat = time.monotonic()
            if accepting and not self.alive:  # SIGTERM or max_requests: finish what is open
                accepting = False
                stop_by = time.monotonic() + self.cfg.graceful_timeout - 1
                self._stop_accepting()
            listeners = []
            for fd, _ in self.poller.poll(self._wait(), 1):  # one at a time: in arrival order
                what = self.watched.get(fd)
                if isinstance(what, Connection):
                    self._guarded(self._readable, what)
                elif what is _WAKEUP:
                    os.read(self.PIPE[0], 4096)
                elif what is not None:
                    listeners.append(what)
            for _ in range(len(self.ready)):  # one request each, then the others' turn
                conn = self.ready.popleft()
                if conn in self.open:
                    self._guarded(self._frame, conn)
            if self.alive and time.monotonic() >= self.balance_at:
                listeners = self.sockets  # it left some waiting, or a second has passed
            if self.alive and time.monotonic() >= self.rebalance_at:
                self._rebalance()
            if self.alive and listeners:
                self._take_new(listeners)
            self._expire()

            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
        for conn in list(self.open):
            self._close(conn)
        SHARES.release(self.age)

    def _guarded(self, step: Any, conn: Connection) -> None:
        """Run one step for one connection; whatever goes wrong closes that connection only.

        Exception, not BaseException: gunicorn ends a worker past its timeout with SystemExit.
        """
        try:
            step(conn)
        except Exception:
            self.log.exception("closed a connection from %s after an unexpected error", conn.addr)
            self._close(conn)

    def _wait(self) -> float:
        """Seconds until the next heartbeat, deadline or look for new connections, whichever
        comes first; none if a connection holds a request ready to frame."""
        if self.ready:
            return 0.0
        now = time.monotonic()
        return max(min(now + (self.timeout or 0.5), self.next_deadline, self.balance_at) - now, 0)

    def _wait_until(self, conn: Connection, seconds: float) -> None:
        """Give `conn` until `seconds` from now for what the loop waits for next."""
        conn.deadline = time.monotonic() + seconds
        self.next_deadline = min(self.next_deadline, conn.deadline)

    def _stop_accepting(self) -> None:
        """Leave the listeners to the other workers, and close the kept-alive connections idle
        between requests (a new connection's first request is still awaited)."""
        SHARES.release(self.age)
        for listener in self.sockets:
            self.poller.unregister(listener.fileno())
            del self.watched[listener.fileno()]
        for conn in [c for c in self.open if c.served and not c.data and not c.closing]:
            self._close(conn)

    def _take_new(self, listeners: list[Any]) -> None:
        """Accept new connections while this worker holds no more than the least loaded one
        plus one, until none is waiting.

        A kept-alive connection stays with the worker that accepted it, and the kernel hands a
        new one to whichever worker asks first: so the workers share their counts (Shares) and
        kept-alive clients spread evenly. A worker that leaves waiting connections to a less
        loaded one looks again soon (balance_interval), and takes them itself once it has left
        them for `patience` seconds: the other may be busy, or may have left them in turn.
        """
        now = time.monotonic()
        patient = self.left_at is None or now - self.left_at < self.patience
        for listener in listeners:
            while True:
                if patient and len(self.open) > SHARES.fewest() + 1:
                    if self.left_at is None:
                        self.left_at = now
                    self.balance_at = now + self.balance_interval
                    return
                if not self._accept(listener):
                    break
        self.left_at = None  # none waiting
        self.balance_at = now + 1.0

    def _rebalance(self) -> None:
        """How many kept-alive connections to close after their next answer (Connection:
        close), for holding more than twice the least loaded worker's plus one.

        A worker busy past the others' `patience` when clients connect leaves them all to the
        others, and kept-alive, they would stay there: 4 clients on one worker of two, the other
        idle, served 10,000-row batches at half the rate. Their clients connect again, and the
        least loaded worker takes them (_take_new). Within that bound (say 14 and 10) none is
        closed, nor while clients are still arriving (the counts changed since the last look):
        answers to kept-alive clients only end their connections when it matters.
        """
        counts = (len(self.open), SHARES.fewest())
        settled, self.looked = counts == self.looked, counts
        self.surplus = counts[0] - 2 * counts[1] - 1 if settled else 0
        self.rebalance_at = time.monotonic() + self.rebalance_interval

    def _leave(self) -> bool:
        """Whether this answer closes its connection, one of the surplus."""
        if self.surplus <= 0:
            return False
        self.surplus -= 1
        return True

    def _accept(self, listener: socket.socket) -> bool:
        """Accept one connection and read what it sent; False if none was waiting (or this
        worker is full: worker_connections, none of them idle)."""
        if len(self.open) >= self.cfg.worker_connections and not self._evict_idle():
            return False
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                self.log.warning("accept failed: %s", exc)
            return exc.errno == errno.ECONNABORTED
        util.close_on_exec(sock)
        sock.setblocking(False)
        server = self.addresses.get(listener)
        if server is None:
            server = self.addresses[listener] = listener.getsockname()
        conn = Connection(sock, addr, listener, server, 0.0, Framer(self.limits), sock.fileno())
        self._wait_until(conn, self.header_timeout)
        self.open.add(conn)
        SHARES.publish(self.age, len(self.open))
        self.poller.register(conn.fd, select.EPOLLIN)
        self.watched[conn.fd] = conn
        self._guarded(self._readable, conn)  # a prompt client's request is usually here already
        return True

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest, to make room for a new one: kept-alive
        connections must not lock others out."""
        idle = [c for c in self.open if c.served and not c.data and not c.closing]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _readable(self, conn: Connection) -> None:
        try:
            chunk = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: nobody left to answer
            self._close(conn)
            return
        if conn.closing:  # an answered client: drain, and close at its end
            if not chunk:
                self._close(conn)
            return
        if not chunk:
            conn.eof = True
            self._unwatch(conn)  # a closed stream stays readable: stop asking
            if conn not in self.ready:
                self._frame(conn)
            return
        if self.buffered + len(chunk) > self.budget:
            self._refuse(conn, 503, "The server is busy reading other requests.")
            return
        if not conn.data and conn.served:  # a kept-alive connection's next request begins
            self._wait_until(conn, self.header_timeout)
        conn.data += chunk
        self.buffered += len(chunk)
        if conn not in self.ready:  # else its turn comes after the request before it
            self._frame(conn)

    def _frame(self, conn: Connection) -> None:
        """Serve the request at the start of the connection's bytes once they are all in."""
        framer = conn.framer
        had_head = framer.head is not None
        try:
            end = framer.end(conn.data)
        except Refused as refusal:
            self._refuse(conn, refusal.status, refusal.reason)
            return
        head = framer.head
        if head is not None and not had_head:  # the headers are in: the body's turn
            self._wait_until(conn, self.body_timeout)
            if head.expect_continue and end is None and not conn.eof:
                try:
                    conn.sock.send(_CONTINUE)
                except OSError:
                    self._close(conn)
                    return
        if end is not None:
            self._serve(conn, end)
        elif conn.eof:  # nothing more will come
            if conn.data:
                self._refuse(conn, 400, "The request ended before it was complete.")
            else:
                self._close(conn)

    def _serve(self, conn: Connection, end: int) -> None:
        """Answer the request in the connection's first `end` bytes; keep the connection for
        the next one if both sides may."""
        head = conn.framer.head
        split = end if head is None else head.size
        with memoryview(conn.data) as data:
            request = [bytes(data[:split]), *([bytes(data[split:end])] if split < end else [])]
        del conn.data[:end]
        self.buffered -= end
        conn.framer.reset()
        conn.served += 1
        if head is not None and head.expect_continue:
            request[0] = _without_expect(request[0])
        keep = (
            head is not None
            and head.keep_alive
            and self.keepalive > 0
            and conn.served < self.requests_per_connection
            and not conn.eof
            and not self._leave()
        )
        if not self._respond(conn, request, keep):
            self._linger(conn)
        elif conn.data:  # pipelined: its next request is (at least partly) here
            self._wait_until(conn, self.header_timeout)
            self.ready.append(conn)
        else:
            self._wait_until(conn, self.keepalive)

    def _respond(self, conn: Connection, request: list[bytes], keep: bool) -> bool:
        """gunicorn's parser and the app, as the sync worker runs them, over exactly this
        request's bytes (its head, then its body); whether the connection stays open for
        another request.

        Apart: gunicorn's parser copies all it holds, several times, while it looks for the
        head's end, and a large body would be copied with it on every request.
        """
        sock = conn.sock
        req = None
        try:
            req = next(http.get_parser(self.cfg, request, conn.addr))
            kept = self._handle(conn, req, keep)
        except (http.errors.ParseException, http.errors.NoMoreData) as exc:
            # gunicorn's own refusals, and NoMoreData: its reading of the framing differed
            status, message = _REFUSED.get(type(exc), (400, "The request is malformed."))
            self._send(conn, _refusal(status, message, request[0]))
            kept = False
        except OSError as exc:  # the client went away or stalled: nobody to answer
            self.log.debug("Connection error while serving: %s", exc)
            kept = False
        except Exception as exc:
            sock.settimeout(self.io_timeout)  # gunicorn's error answer: a blocking sendall
            self.handle_error(req, sock, conn.addr, exc)
            sock.settimeout(0.0)
            kept = False
        return kept

    def _handle(self, conn: Connection, req: Any, keep: bool) -> bool:
        """Run the app for a parsed request and write its answer (gunicorn's sync worker's
        handle_request, without forcing the connection closed)."""
        environ: dict[str, Any] = {}
        resp = None
        outbox = Outbox(conn.sock, self.io_timeout)
        try:
            self.cfg.pre_request(self, req)
            started = datetime.now()
            resp, environ = wsgi.create(req, outbox, conn.addr, conn.server, self.cfg)
            self.nr += 1
            if self.nr >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not keep or not self.alive:
                resp.force_close()
            body = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(body, environ["wsgi.file_wrapper"]):
                    resp.write_file(body)
                else:
                    for item in body:
                        resp.write(item)
                resp.close()
                outbox.send_held()
            finally:
                self.log.access(resp, req, environ, datetime.now() - started)
                if hasattr(body, "close"):
                    body.close()
        except Exception:
            if resp is not None and resp.headers_sent:  # a second answer would corrupt this one
                self.log.exception("Error handling request")
                return False
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return not resp.should_close()

    def _send(self, conn: Connection, data: bytes) -> None:
        try:
            conn.sock.sendall(data)
        except OSError:
            pass

    def _expire(self) -> None:
        """Close or refuse the connections past their deadline (looked for only once the
        earliest deadline has passed: not a scan of every connection per request)."""
        now = time.monotonic()
        if now < self.next_deadline:
            return
        expired = [c for c in self.open if c.deadline <= now]
        later = (c.deadline for c in self.open if c.deadline > now)
        self.next_deadline = min(later, default=float("inf"))
        for conn in expired:
            if conn.closing or not conn.data:  # nothing was asked, or an idle keep-alive
                self._close(conn)
            else:
                self._refuse(conn, 408, "The request did not arrive in time.")

    def _refuse(self, conn: Connection, status: int, message: str) -> None:
        """Answer a request this loop gave up on, and close the connection."""
        try:
            conn.sock.send(_refusal(status, message, conn.data))
        except OSError:
            pass
        self.log.info("refused a connection from %s: %d", conn.addr[0], status)
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        """Half-close, and drain what the client still sends for a moment, without waiting.

        Closing with unread data in the socket would reset the connection and could cut off
        the response; gunicorn lingers too, but blocking the worker for up to two seconds.
        """
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        if conn.eof:  # the client sent all it will: nothing to drain
            self._close(conn)
            return
        conn.closing = True
        self._wait_until(conn, self.linger)
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)

    def _unwatch(self, conn: Connection) -> None:
        if self.watched.pop(conn.fd, None) is not None:
            self.poller.unregister(conn.fd)

    def _close(self, conn: Connection) -> None:
        self.buffered -= len(conn.data)
        conn.data = bytearray()
        if conn in self.open:
            self.open.discard(conn)
            self._unwatch(conn)
            if self.alive:
                SHARES.publish(self.age, len(self.open))
        util.close(conn.sock)
