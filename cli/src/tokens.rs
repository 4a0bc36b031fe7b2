//! `tempest users add` and `tempest token hash`: make user tokens and the `[nimbus.users]` lines
//! that hold only their sha256, so operators never write a hash by hand. Nothing is sent.

use crate::error::CliError;
use std::io::{BufRead, Write};
use tempest_protocol::auth::{token_sha256, Role, TOKEN_PREFIX};

/// A new token: the prefix and 256 random bits from the OS, in hex.
fn new_token() -> Result<String, CliError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| CliError::Failed(format!("cannot get random bytes from the OS: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{TOKEN_PREFIX}{hex}"))
}

/// The `[nimbus.users]` line of user `name` with `role` and the token's `digest`.
fn config_line(name: &str, role: Role, digest: &str) -> String {
    format!("{name} = {{ role = \"{role}\", token_sha256 = \"{digest}\" }}")
}

fn out(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::Failed(format!("cannot write to stdout: {e}")))
}

/// `tempest users add NAME --role R`.
pub(crate) fn add_user(name: &str, role: Role) -> Result<(), CliError> {
    let token = new_token()?;
    let line = config_line(name, role, &token_sha256(&token));
    out(&format!(
        "# the token of {name} (role {role}); hand it to {name} (as TEMPEST_TOKEN or `token` in [client]); it is not shown again:\n\
         {token}\n\
         # put this line under [nimbus.users] in Nimbus's config file, then restart Nimbus:\n\
         {line}\n"
    ))
}

/// `tempest token hash`: the sha256 of the token on stdin's first line.
pub(crate) fn hash_stdin() -> Result<(), CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Failed(format!("cannot read the token from stdin: {e}")))?;
    let token = line.trim();
    if token.is_empty() {
        return Err(CliError::Usage(
            "no token on stdin: pipe it in (e.g. `tempest token hash < token.txt`); tokens are never taken as arguments".into(),
        ));
    }
    out(&format!("{}\n", token_sha256(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_the_line_holds_only_the_digest() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        let line = config_line("alice", Role::Submitter, &token_sha256(&a));
        assert!(!line.contains(&a));
        assert!(line.starts_with("alice = { role = \"submitter\", token_sha256 = \""));
    }
}
