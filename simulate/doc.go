// Package simulate holds traffic generators, never traffic receivers: the
// made-up systems of demo mode and the load tool (simulate/scenario), the
// synthetic traces of benchmarks (simulate/synth). Nothing in ingest,
// graph, detect, storage or web imports them outside tests.
package simulate
