"""ganforge's benchmarks: one harness (harness.py), one small module per benchmark, results/ (one JSONL per
benchmark, each row with date, host and commit), README.md generated from them by `python -m benchmarks.index`.

Run a benchmark from the repository root: `python -m benchmarks.NAME --help`."""
