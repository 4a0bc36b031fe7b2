//! What running spouts are told to do.

/// Whether spouts should be emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyStatus {
    /// Spouts emit.
    Active,
    /// Spouts are paused (`deactivate` was called); bolts keep processing.
    Inactive,
    /// Everything shuts down.
    Killed,
}
