//! Types shared by every domain: ids as they appear at the edge.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::core::ids::MAX_SAFE_ID;

/// A positive id of at most 2^53 - 1. Anything else fails to parse, so a bad
/// id in a path is a 404 and in a body a 400 before any actor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = i64)]
pub struct Id(i64);

impl Id {
    pub fn new(raw: i64) -> Option<Id> {
        (1..=MAX_SAFE_ID).contains(&raw).then_some(Id(raw))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        Id::new(raw).ok_or_else(|| {
            serde::de::Error::custom(format!("id must be between 1 and {MAX_SAFE_ID}, got {raw}"))
        })
    }
}

/// A required one-line text field: 1 to `max_chars` characters, not blank, no
/// control characters. Else 400 naming the field.
pub fn check_line(
    value: &str,
    what: &str,
    max_chars: usize,
) -> Result<(), crate::core::error::ApiError> {
    let n = value.chars().count();
    if n == 0 || n > max_chars || value.trim().is_empty() || has_control_chars(value) {
        return Err(crate::core::error::ApiError::invalid_input(format!(
            "{what} must be 1-{max_chars} characters, not blank, no control characters"
        )));
    }
    Ok(())
}

/// Free text (descriptions, messages): at most `max_chars` characters, may be
/// empty; newlines are fine, other control characters are not. Else 400.
pub fn check_free_text(
    value: &str,
    what: &str,
    max_chars: usize,
) -> Result<(), crate::core::error::ApiError> {
    if value.chars().count() > max_chars || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(crate::core::error::ApiError::invalid_input(format!(
            "{what} must be at most {max_chars} characters, no control characters"
        )));
    }
    Ok(())
}

/// A chat message body: 1 to `max_chars` characters; line breaks and tabs
/// are fine, other control characters (NUL above all, which PostgreSQL's
/// TEXT cannot store) are not.
pub fn check_message_text(value: &str, max_chars: usize) -> Result<(), &'static str> {
    let n = value.chars().count();
    if n == 0 || n > max_chars {
        return Err("body must be 1-4000 characters");
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("body must not contain control characters other than line breaks and tabs");
    }
    Ok(())
}

/// Rejects text with control characters (other than none at all): they have
/// no business in names and break logs and terminals.
pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_text_allows_line_breaks_but_no_other_controls() {
        assert!(check_message_text("hi\nthere\tyou\r\n", 4000).is_ok());
        assert!(check_message_text("你好 🌻", 4000).is_ok());
        assert!(check_message_text("hi\u{0}", 4000).is_err());
        assert!(check_message_text("bell\u{7}", 4000).is_err());
        assert!(check_message_text("c1\u{85}", 4000).is_err());
        assert!(check_message_text("", 4000).is_err());
        assert!(check_message_text("ab", 1).is_err());
    }

    #[test]
    fn ids_parse_only_in_range() {
        assert_eq!(serde_json::from_str::<Id>("5").unwrap().get(), 5);
        assert!(serde_json::from_str::<Id>("0").is_err());
        assert!(serde_json::from_str::<Id>("-1").is_err());
        assert!(serde_json::from_str::<Id>("9007199254740992").is_err());
        assert!(serde_json::from_str::<Id>("\"5\"").is_err());
        assert!(serde_json::from_str::<Id>("1.5").is_err());
    }
}
