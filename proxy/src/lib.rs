//! ccgate-proxy: the enforcing proxy daemon.
