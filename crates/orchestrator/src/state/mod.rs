//! The run-state store (being built: see the orchestrator issue).
