//! ccgate: the installer CLI.
