//! Tempest nimbus.
