"""``python -m monai_slo``: the same as the ``monai-slo`` console script."""

import sys

from monai_slo.cli import main

sys.exit(main())
