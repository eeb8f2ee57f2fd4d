//! On PostgreSQL: What the server reads and writes once when it starts: the built-in
