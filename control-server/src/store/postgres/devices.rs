//! On PostgreSQL: Devices: registration with an install code, details, sightings, tokens.
