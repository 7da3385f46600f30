"""`python -m webapp.package MODEL.pkl`: describe, compile and verify a model (describe.py)."""

import sys

from .describe import main

sys.exit(main())
