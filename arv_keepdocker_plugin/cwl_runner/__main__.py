"""``python -m arv_keepdocker_plugin.cwl_runner``: the ``arv-keepdocker-cwl-runner`` command."""

import sys

# The package's main, not a copy, so that one set of patches exists however
# the launcher was started.
from arv_keepdocker_plugin.cwl_runner import main

sys.exit(main())
