//! End-to-end tests for Depicted live under `tests/tests/`; this library only holds shared helpers.
