"""``python -m monai_slo.checks.gpu``: one-shot JSON report of the real NVML readings."""

from monai_slo.checks.gpu import main

raise SystemExit(main())
