"""``python -m tweetdomains``: runs the installed ``tweetdomains`` command.

The library imports no service and no launcher (its import contracts forbid it), so it finds
the command the way the shell does: the ``tweetdomains`` console script of the installed
distribution, through its entry point.
"""

import sys
from importlib import metadata

COMMAND = "tweetdomains"

commands = metadata.entry_points(group="console_scripts", name=COMMAND)
if not commands:
    sys.exit(f"{COMMAND}: the command is not installed (pip install tweetdomains)")
sys.exit(next(iter(commands)).load()())
