"""``python -m tweetdomains``."""

import sys

from tweetdomains.cli import main

sys.exit(main())
