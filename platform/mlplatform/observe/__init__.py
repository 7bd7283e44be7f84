"""Seeing a run while it runs: Prometheus over Ray's metrics pipeline (``prometheus``) and the platform's
own gauges exported through it (``gauges``). docs/observability.md has the commands and metric names."""
