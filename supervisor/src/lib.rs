//! Tempest supervisor.
