"""`python -m data_builders.sandbox run --language L FILE`: the same as `qwenpost sandbox run`."""

import sys

from data_builders.sandbox.cli import main

sys.exit(main())
