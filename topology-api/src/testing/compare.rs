//! Comparing tuple lists: in order, or as multisets (Storm's `ms=`), with a message that says
//! what differs.

use tempest_runtime::Value;

/// `Ok` if `actual` holds the same tuples as `expected` in the same order; otherwise a message
/// naming the first difference.
pub fn same_in_order<A, E>(actual: &[A], expected: &[E]) -> Result<(), String>
where
    A: AsRef<[Value]>,
    E: AsRef<[Value]>,
{
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if a.as_ref() != e.as_ref() {
            return Err(format!(
                "tuple {i} differs: got {:?}, expected {:?}",
                a.as_ref(),
                e.as_ref()
            ));
        }
    }
    if actual.len() != expected.len() {
        return Err(format!(
            "got {} tuples, expected {}; the first {} agree",
            actual.len(),
            expected.len(),
            actual.len().min(expected.len())
        ));
    }
    Ok(())
}

/// `Ok` if `actual` holds the same tuples as `expected`, each as many times, in any order;
/// otherwise a message listing what is missing and what is extra.
pub fn same_multiset<A, E>(actual: &[A], expected: &[E]) -> Result<(), String>
where
    A: AsRef<[Value]>,
    E: AsRef<[Value]>,
{
    // Values may hold floats (no Eq, no Hash): match pairs, quadratic but for test-sized lists.
    let mut unmatched: Vec<&[Value]> = actual.iter().map(AsRef::as_ref).collect();
    let mut missing = Vec::new();
    for e in expected {
        match unmatched.iter().position(|a| *a == e.as_ref()) {
            Some(i) => {
                unmatched.swap_remove(i);
            }
            None => missing.push(e.as_ref()),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return Ok(());
    }
    Err(format!(
        "not the same multiset: missing {missing:?}, extra {unmatched:?} ({} tuples, expected {})",
        actual.len(),
        expected.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[test]
    fn order_and_multiplicity_are_told_apart() {
        let a = [values!["a", 1], values!["b", 2], values!["a", 1]];
        let shuffled = [values!["a", 1], values!["a", 1], values!["b", 2]];
        assert!(same_in_order(&a, &a).is_ok());
        assert!(same_multiset(&a, &shuffled).is_ok());
        let e = same_in_order(&a, &shuffled).unwrap_err();
        assert!(e.contains("tuple 1 differs"), "{e}");
        let e = same_multiset(&a[..2], &shuffled).unwrap_err();
        assert!(e.contains("missing [[Str(\"a\"), I64(1)]]"), "{e}");
        assert!(same_in_order(&a[..2], &a)
            .unwrap_err()
            .contains("got 2 tuples, expected 3"));
        assert!(same_multiset(&a, &a[..2]).unwrap_err().contains("extra"));
    }
}
