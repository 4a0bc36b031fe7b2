//! Nimbus seed lists (Storm's `nimbus.seeds`): where a client may find Nimbus, written as one URL,
//! a comma-separated string (`"http://a:6627,http://b:6627"`, as on a command line or in
//! `TEMPEST_NIMBUS`) or a TOML list of URLs. Config sections read them with [`deserialize`],
//! which turns every form into the comma-separated string that every client accepts.

use serde::{Deserialize, Deserializer};

/// Splits a seed list on commas (and whitespace), dropping empty entries: the URLs in order.
pub fn split(seeds: &str) -> Vec<&str> {
    seeds
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Reads an optional seed list given as a string or a list of strings; a list is joined with
/// commas. For `#[serde(default, deserialize_with = "tempest_protocol::seeds::deserialize")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match Option::<OneOrMany>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(OneOrMany::One(s))) => Ok(Some(s)),
        Ok(Some(OneOrMany::Many(list))) => Ok(Some(list.join(","))),
        Err(_) => Err(serde::de::Error::custom(
            "expected a Nimbus URL, a comma-separated list of them, or a list of URL strings \
             (e.g. nimbus = [\"http://a:6627\", \"http://b:6627\"])",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Section {
        #[serde(default, deserialize_with = "deserialize")]
        nimbus: Option<String>,
    }

    #[test]
    fn a_url_a_comma_list_and_a_toml_list_are_one_seed_list() {
        let one: Section = serde_json::from_str(r#"{"nimbus": "http://a:1"}"#).unwrap();
        assert_eq!(one.nimbus.as_deref(), Some("http://a:1"));
        let list: Section =
            serde_json::from_str(r#"{"nimbus": ["http://a:1", "http://b:2"]}"#).unwrap();
        assert_eq!(list.nimbus.as_deref(), Some("http://a:1,http://b:2"));
        let none: Section = serde_json::from_str("{}").unwrap();
        assert_eq!(none.nimbus, None);
        let e = serde_json::from_str::<Section>(r#"{"nimbus": 7}"#).unwrap_err();
        assert!(e.to_string().contains("list of URL strings"), "{e}");
        assert_eq!(
            split(" http://a:1, http://b:2 ,,http://c:3"),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
    }
}
