"""The CLI verbs' bodies; ``monai_slo.cli`` only parses arguments."""
