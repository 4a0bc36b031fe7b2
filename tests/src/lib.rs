//! Helpers for the cluster tests: find the built binaries, start and stop daemons.
