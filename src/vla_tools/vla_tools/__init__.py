"""The `vla` command and everything that drives several packages at once: its verbs, the demo loop and its
reports, the benchmarks and the fuzz harness."""
