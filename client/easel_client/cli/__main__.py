"""``python -m easel_client.cli``: the same as the ``easel`` command."""

import sys

from .main import main

sys.exit(main())
