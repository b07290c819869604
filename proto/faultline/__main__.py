"""python -m faultline: the controller CLI (the same as the `faultline` command)."""

import sys

from faultline.controller.cli.main import main

sys.exit(main())
