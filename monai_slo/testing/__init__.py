"""Public test doubles and local peers (fake NVML, demo peers); shipped, used by the demo."""
