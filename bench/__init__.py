"""On-demand benchmarks of monai-slo against real peers, beside their baselines.

``python -m bench`` (or ``make bench``) starts its own peers on loopback (Orthanc, DCMTK
storescp, a small HTTP server, prometheus-blackbox-exporter), measures, and prints one table:
each figure, its baseline, the ratio, and the target where there is one. Not part of the test
run: it takes minutes and its numbers depend on the machine. See docs/performance.md.
"""
