//! Where a task's state is kept between checkpoints: a base (the state as of the last
//! compacted checkpoint) and one delta per checkpoint since, each written durably before the
//! task passes its checkpoint barrier on. Restoring to checkpoint `g` applies the deltas up to
//! `g` and discards the later ones (they belong to checkpoints that never completed).
//!
//! This is the interface both providers implement and the formats they share; which provider a
//! topology uses is [`provider`](super::provider).

use std::collections::BTreeMap;

/// Changed keys of one checkpoint: the new value, or `None` for a deleted key.
pub(crate) type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A task's state as restored.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    /// The newest checkpoint the state includes (`None`: nothing was ever saved).
    pub checkpoint: Option<u64>,
    /// Every key and value.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store exists but cannot be read: a damaged file, a foreign format.
    #[error("the state at {place} is unreadable: {message}; move it aside to start this task from empty state")]
    Unreadable {
        /// The file or key.
        place: String,
        /// What failed.
        message: String,
    },
    /// The checkpoint to restore is not in the store.
    #[error("checkpoint {wanted} is missing from the state at {place} (its newest is {newest}); was the state deleted or moved?")]
    Missing {
        /// The file or key.
        place: String,
        /// The checkpoint asked for.
        wanted: u64,
        /// The newest it has (0: none).
        newest: u64,
    },
    /// The store cannot be reached or written.
    #[error("state at {place}: {message}")]
    Io {
        /// The file or server.
        place: String,
        /// What failed.
        message: String,
    },
}

/// One task's state store.
pub(crate) trait StateStore: Send {
    /// The state as of checkpoint `upto` (the newest saved when `None`); deltas after it are
    /// discarded.
    fn restore(&mut self, upto: Option<u64>) -> Result<Restored, StoreError>;
    /// Saves the changes of checkpoint `id`, durably (written before this returns).
    fn save(&mut self, id: u64, changes: &Changes) -> Result<(), StoreError>;
    /// Folds the deltas up to `upto` into the base.
    fn compact(&mut self, upto: u64) -> Result<(), StoreError>;
}

/// How many completed checkpoints a spout task's mark remembers (exactly-once mode).
pub(crate) const MARKS_KEPT: usize = 32;

/// Parses a completion mark: checkpoint ids separated by spaces.
pub(crate) fn parse_marks(s: &str) -> Option<Vec<u64>> {
    s.split_whitespace().map(|id| id.parse().ok()).collect()
}

/// Restores a store's contents to checkpoint `upto` (its newest when `None`): applies the
/// deltas up to it to `base` (the state at `base_id`); returns the state and the ids of the
/// later deltas, which the store must discard. `Missing` if the store cannot give `upto`.
pub(crate) fn restore_to(
    place: &str,
    base_id: u64,
    mut base: BTreeMap<Vec<u8>, Vec<u8>>,
    deltas: Vec<(u64, Changes)>,
    upto: Option<u64>,
) -> Result<(Restored, Vec<u64>), StoreError> {
    let newest = deltas.last().map_or(base_id, |(id, _)| *id);
    let upto = upto.unwrap_or(newest);
    if upto > newest || upto < base_id {
        return Err(StoreError::Missing {
            place: place.to_string(),
            wanted: upto,
            newest,
        });
    }
    let mut discard = Vec::new();
    for (id, changes) in deltas {
        if id > upto {
            discard.push(id);
            continue;
        }
        for (k, v) in changes {
            match v {
                Some(v) => {
                    base.insert(k, v);
                }
                None => {
                    base.remove(&k);
                }
            }
        }
    }
    let restored = Restored {
        checkpoint: (upto > 0).then_some(upto),
        entries: base.into_iter().collect(),
    };
    Ok((restored, discard))
}

/// Encodes one checkpoint's changes: per change, the key's length (u32 LE) and bytes, then
/// 0 (deleted) or 1 with the value's length and bytes.
pub(crate) fn encode_changes(changes: &Changes) -> Vec<u8> {
    let size: usize = changes
        .iter()
        .map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let mut out = Vec::with_capacity(size);
    for (k, v) in changes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

/// Decodes what [`encode_changes`] wrote; `None` if it is damaged.
pub(crate) fn decode_changes(mut bytes: &[u8]) -> Option<Changes> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if bytes.len() < n {
            return None;
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Some(head)
    }
    fn len(bytes: &mut &[u8]) -> Option<usize> {
        Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?) as usize)
    }
    let mut changes = Vec::new();
    while !bytes.is_empty() {
        let n = len(&mut bytes)?;
        let key = take(&mut bytes, n)?.to_vec();
        let value = match take(&mut bytes, 1)?[0] {
            0 => None,
            1 => {
                let n = len(&mut bytes)?;
                Some(take(&mut bytes, n)?.to_vec())
            }
            _ => return None,
        };
        changes.push((key, value));
    }
    Some(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_damage_is_detected() {
        let changes: Changes = vec![
            (b"cow".to_vec(), Some(b"3".to_vec())),
            (b"".to_vec(), None),
            (b"moon".to_vec(), Some(Vec::new())),
        ];
        let bytes = encode_changes(&changes);
        assert_eq!(decode_changes(&bytes), Some(changes));
        assert_eq!(decode_changes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_changes(&[1, 0, 0, 0, b'k', 7]), None);
    }
}
