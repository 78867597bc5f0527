"""The example manifests and the script that writes their data (importable by the tests and
the benchmarks)."""
