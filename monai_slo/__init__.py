"""monai-slo: availability SLO monitoring for MONAI Deploy operating environments."""

__version__ = "0.1.0"
