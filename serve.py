"""Start gunicorn with gunicorn.conf.py: `python serve.py [gunicorn options]`, as `make run` and
the container do.

gunicorn reads WEB_CONCURRENCY itself as it is imported, before any configuration file runs,
and a value that is not a number ends in its traceback. It is checked here first, so it gets
one clear line like every other setting; gunicorn.conf.py checks the rest, and its range.
"""

import os
import re
import sys


def main() -> None:
    """Check what gunicorn reads on import, then run gunicorn in this process."""
    workers = os.environ.get("WEB_CONCURRENCY", "").strip()
    if workers and not re.fullmatch(r"[0-9]+", workers):
        sys.exit(f"WEB_CONCURRENCY must be a whole number, got {workers!r}")
    from gunicorn.app.wsgiapp import run

    sys.argv = ["gunicorn", "-c", "gunicorn.conf.py", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
