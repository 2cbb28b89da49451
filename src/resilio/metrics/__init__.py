"""Exporters that read resilio's counters at scrape time.

Each exporter lives in its own module with its own optional dependency, and the
core never imports this package: ``resilio.metrics.prometheus`` needs the
``prometheus`` extra (``pip install 'resilio-primitives[prometheus]'``).
"""
