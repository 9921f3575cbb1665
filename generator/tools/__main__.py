"""``python -m generator.tools``: bootstrap kubectl and helm and print the versions in use."""

import sys

from generator.tools import main

sys.exit(main())
