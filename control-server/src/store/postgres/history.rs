//! On PostgreSQL: What happened: usage buckets, event and audit pages, recorded events, utilization history.
