"""``python -m arv_keepdocker_plugin`` is ``arv keepdocker``."""

import sys

from .cli import run

if __name__ == "__main__":
    sys.exit(run(prog="arv keepdocker"))
