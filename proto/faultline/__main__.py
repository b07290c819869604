"""python -m faultline: the controller CLI (the same as the `faultline` command)."""

from faultline.controller.cli.main import main

main()
