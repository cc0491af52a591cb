"""Entry point: `python -m local_stack [options]` (see `config.py` for the options)."""

import os
import sys

from .runner import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything started has been stopped: skip the interpreter's slow teardown of the AWS
    # SDK's objects (most of a second), so a stop is quick.
    os._exit(code)
