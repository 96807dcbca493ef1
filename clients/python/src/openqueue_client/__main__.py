"""``python -m openqueue_client``: the same as ``openqueue-worker``."""

import sys

from openqueue_client.cli import main

sys.exit(main())
