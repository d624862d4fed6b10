"""``python -m tweetdomains_cli``."""

import sys

from tweetdomains_cli.main import main

sys.exit(main())
