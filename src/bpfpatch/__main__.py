"""`python -m bpfpatch ...`"""

import sys

from bpfpatch.cli import main

sys.exit(main())
