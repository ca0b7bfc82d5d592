"""`python -m userflow_assets.emulator`: serve the emulator on a port (see server.py)."""

import sys

from userflow_assets.emulator.server import main

sys.exit(main())
