//! Benchmarks for Depicted live under `benches/benches/`; see `benches/README.md`.
