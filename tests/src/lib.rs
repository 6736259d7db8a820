//! Integration tests for Gemba live in `tests/api/`: they spawn the real
//! server on port 0, on SQLite and (with `GEMBA_TEST_POSTGRES_URL`) on
//! PostgreSQL, and talk to it over HTTP.
