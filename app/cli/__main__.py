"""`python -m app.cli ...`: the console script without installing it."""

import sys

from app.cli import main

sys.exit(main())
