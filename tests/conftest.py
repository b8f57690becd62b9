"""Property tests draw the same examples on every run (CI must not fail by chance).

HYPOTHESIS_PROFILE=explore draws fresh random examples instead, to hunt for new failures.
"""

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
