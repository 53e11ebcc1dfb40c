"""`python -m pipeline ...` is the same as `qwenpost ...`."""

import sys

from pipeline.cli import main

sys.exit(main())
