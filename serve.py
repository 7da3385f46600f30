"""Start gunicorn as the image does: `python serve.py [gunicorn options]` (`make run`).

A thin hand-over to webapp/server/start.py, which `sklearn-serve serve` runs too.
"""

import sys

from webapp.server.start import run

if __name__ == "__main__":
    run(sys.argv[1:])
