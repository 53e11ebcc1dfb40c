"""`python -m sandbox run --language L FILE`: the same as `qwenpost sandbox run`."""

import sys

from sandbox.cli import main

sys.exit(main())
