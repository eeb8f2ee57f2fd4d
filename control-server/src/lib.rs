//! ccgate-server: the central control server.
