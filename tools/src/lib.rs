//! Tern admin CLI: mqadmin-style commands (issue 5; not built yet).
