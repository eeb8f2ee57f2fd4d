//! Test support shared by the end-to-end tests: the fake Anthropic upstream
//! and helpers that start the real parts in-process.
