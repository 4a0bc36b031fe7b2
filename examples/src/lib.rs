//! Shared pieces of the example topologies.
