"""realtime_nb benchmarks: each ``bench_*.py`` exposes ``run() -> list[dict]``."""
