"""The ``tweetdomains`` command: a launcher that services register their commands with.

It imports no service. Each service declares a ``register(subparsers)`` function in the
``tweetdomains.commands`` entry-point group (``pyproject.toml``); the launcher loads what is
installed, so an image with only the library and the collector offers ``collect`` and runs
without torch.
"""
