"""gcp-storage-emulator as the tests run it: `python -m testkit.emulator start ...`, the same
command line, each connection served on a thread of its own.

The emulator's own HTTPServer serves one connection at a time, reads it without a timeout, and
keeps a listen backlog of 5. One client that connects and stays silent, or stops reading an
answer, then freezes it for every other client, whose connections wait in the kernel until
they time out. Cloud Storage serves its clients independently; so does this.
"""

from __future__ import annotations

from http import server

from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.__main__ import main

# What a connection may spend silent before its thread drops it (the tests' largest objects
# come and go in well under a second).
IDLE_SECONDS = 60.0


class ThreadedServer(server.ThreadingHTTPServer):
    """HTTPServer with a thread per connection, and a backlog no test run fills."""

    request_queue_size = 128


if __name__ == "__main__":
    # The emulator builds `server.HTTPServer(...)` from http.server in its API thread.
    emulator.server.HTTPServer = ThreadedServer  # type: ignore[misc]
    emulator.RequestHandler.timeout = IDLE_SECONDS
    main()
