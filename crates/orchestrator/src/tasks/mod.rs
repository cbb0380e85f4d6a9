//! Pipeline task kinds: `command` and `http` (being built: see the orchestrator issue).
