//! On PostgreSQL: People (users) with their limits, install codes and the audit of changes to them.
