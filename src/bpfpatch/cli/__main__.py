"""`python -m bpfpatch.cli ...`"""

import sys

from bpfpatch.cli import main

sys.exit(main())
