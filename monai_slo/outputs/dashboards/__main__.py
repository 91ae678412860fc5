"""``python -m monai_slo.outputs.dashboards DIRECTORY``: write the dashboards' JSON there."""

import sys

from monai_slo.outputs.dashboards import main

sys.exit(main())
