"""aps-usage: extract Autodesk Premium Reporting and Token Flex usage into a Parquet dataset."""

import os as _os
import sys as _sys

# Arrow buffers from jemalloc, which hands freed pages back to the OS sooner than mimalloc
# (pyarrow's default): importing a 3M-row CSV peaked at ~310 MB with mimalloc, ~265 MB with
# jemalloc, at the same speed. Read when pyarrow is first imported; an explicit choice wins.
# (staging.use_lean_memory_pool switches later for hosts that imported pyarrow first.) Linux
# only: other platforms' wheels may lack jemalloc.
if _sys.platform.startswith("linux"):
    _os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"

AUTODESK_BASE_URL = "https://developer.api.autodesk.com"

# The one Callback URL a user registers on their APS app for `aps-usage auth login`: APS
# redirects only to a registered URL, matched exactly, so the listener cannot pick a random
# port. Override with APS_CALLBACK_URL (the sandbox's `serve --callback-url` has the same default).
# It is the callback of Autodesk's own APS tutorials and samples, so many apps already have it
# registered, and it is not the sandbox's port (8765), so `sandbox serve` + `auth login` coexist.
DEFAULT_CALLBACK_URL = "http://localhost:8080/api/auth/callback"
