"""webapp/server/worker.py's Outbox, on real connected sockets: an answer gunicorn writes in
parts leaves in one send once complete, whole and in order, also where the socket cannot take
it at once or a file follows; the socket stays non-blocking for the worker's loop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webapp.server.worker import Outbox

pytestmark = pytest.mark.unit


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A served TCP connection on 127.0.0.1, non-blocking as the worker holds it, and its
    client, both with small buffers: what they hold together is far below the answers here."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def received(client: socket.socket, size: int) -> bytes:
    data = b""
    client.settimeout(30)
    while len(data) < size:
        chunk = client.recv(size - len(data))
        assert chunk, "the connection closed early"
        data += chunk
    return data


def test_parts_are_held_then_sent_together(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    outbox = Outbox(server, timeout=5)
    outbox.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    outbox.sendall(b"hello")
    client.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing has left yet
        client.recv(100)
    outbox.send_held()
    assert received(client, 43) == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert server.gettimeout() == 0.0
    assert outbox.getsockname() == server.getsockname()  # the rest is the socket's


def test_an_answer_larger_than_the_socket_takes_is_finished_blocking(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Far more than the socket's buffers hold: the non-blocking send takes a part, the rest
    goes out as the client reads it."""
    server, client = pair
    answer = bytes(range(256)) * 2_000  # 512 KB
    outbox = Outbox(server, timeout=30)
    outbox.sendall(answer[:100])
    outbox.sendall(answer[100:])
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(received(client, len(answer))))
    reader.start()
    outbox.send_held()
    reader.join(timeout=30)
    assert got == [answer]
    assert server.gettimeout() == 0.0


def test_a_client_that_stops_reading_fails_the_answer(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Within the timeout for each write, as gunicorn's blocking sendall was."""
    server, _ = pair
    outbox = Outbox(server, timeout=0.2)
    outbox.sendall(bytes(2_000_000))
    with pytest.raises(TimeoutError):
        outbox.send_held()
    assert server.gettimeout() == 0.0


def test_a_file_follows_what_is_held(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    """gunicorn sends a file response's head through sendall, its bytes through sendfile."""
    server, client = pair
    path = tmp_path / "asset.js"
    path.write_bytes(b"x" * 300_000)
    outbox = Outbox(server, timeout=5)
    outbox.sendall(b"head\r\n\r\n")
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(received(client, 300_008)))
    reader.start()
    with path.open("rb") as file:
        assert outbox.sendfile(file, 0, 300_000) == 300_000
    reader.join(timeout=30)
    assert got == [b"head\r\n\r\n" + b"x" * 300_000]
    assert server.gettimeout() == 0.0
