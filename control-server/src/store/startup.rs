//! What the server reads and writes once when it starts (blocking, off the runtime).
