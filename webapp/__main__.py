"""`python -m webapp COMMAND`: the `sklearn-serve` command (cli.py), from a clone."""

import sys

from .cli import main

sys.exit(main())
