//! Integration tests of the orchestrator against real processes, HTTP servers on loopback,
//! SQLite files and the machine's PostgreSQL.
mod state;
