"""The jaxae benchmark suite: ``python -m bench.run`` (one table per config and data size),
``python -m bench.peers`` (Cornac side by side), and the data-path scripts ``bench/bench_data.py``
and ``bench/bench_melon_data.py``. See docs/benchmarks.md for the figures and the exact commands."""
