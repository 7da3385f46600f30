"""`python -m webapp.package MODEL.pkl`: describe, compile and verify a model (command.py)."""

import sys

from .command import main

sys.exit(main())
