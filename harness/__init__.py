"""Local processes for the demo, the benchmarks and the tests: an embedded Redis and `inferq worker` children."""
