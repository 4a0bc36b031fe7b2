//! Names that travel between processes and end up in paths and URLs: checked before they touch
//! either.

/// Checks a topology name: 1-64 characters of `A-Z a-z 0-9 . _ -`, not starting with `.`,
/// so it is safe in paths and URLs.
pub fn check_topology_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('.') {
        return Err(format!(
            "topology name {name:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with .)"
        ));
    }
    Ok(())
}

/// Checks that `sha` is 64 lowercase hex digits (so it is safe as a file name).
pub fn check_sha256(sha: &str) -> Result<(), String> {
    if sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(format!("{sha:?} is not a sha256 (64 lowercase hex digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_a_directory_are_refused() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            ".hidden",
            "a b",
            "x\\y",
            &"n".repeat(65),
        ] {
            assert!(check_topology_name(bad).is_err(), "{bad:?}");
        }
        for good in ["word-count", "wc_2", "Topo.v1"] {
            assert!(check_topology_name(good).is_ok(), "{good:?}");
        }
        assert!(check_sha256(&"a".repeat(64)).is_ok());
        assert!(check_sha256("../../etc/passwd").is_err());
        assert!(check_sha256(&"A".repeat(64)).is_err());
    }
}
