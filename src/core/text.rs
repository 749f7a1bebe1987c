//! Types shared by every domain: ids as they appear at the edge.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize};

use crate::core::ids::MAX_SAFE_ID;

/// A positive id of at most 2^53 - 1, of one kind of entity (`Id<User>`,
/// see the aliases in `core::ids`). Anything else fails to parse, so a bad
/// id in a path is a 404 and in a body a 400 before any actor sees it. A
/// `UserId` cannot be passed where an `OrderId` is expected; `Id` alone
/// (`Id<Any>`) is an id whose kind the code does not say.
pub struct Id<E = Any>(i64, PhantomData<fn() -> E>);

/// The kind of an [`Id`] that does not say its kind.
pub enum Any {}

impl<E> Id<E> {
    pub fn new(raw: i64) -> Option<Id<E>> {
        (1..=MAX_SAFE_ID)
            .contains(&raw)
            .then_some(Id(raw, PhantomData))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

// By hand rather than derived: a derive would require `E` itself to be
// Clone, Eq, ... although only the i64 is compared and copied.
impl<E> Clone for Id<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E> Copy for Id<E> {}
impl<E> PartialEq for Id<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<E> Eq for Id<E> {}
impl<E> PartialOrd for Id<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Id<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl<E> std::hash::Hash for Id<E> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}
impl<E> fmt::Debug for Id<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl<E> fmt::Display for Id<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E> Serialize for Id<E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de, E> Deserialize<'de> for Id<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        Id::new(raw).ok_or_else(|| {
            serde::de::Error::custom(format!("id must be between 1 and {MAX_SAFE_ID}, got {raw}"))
        })
    }
}

/// In the OpenAPI document every id is an integer of at most 2^53 - 1.
impl<E> utoipa::PartialSchema for Id<E> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(1))
            .maximum(Some(MAX_SAFE_ID))
            .into()
    }
}
impl<E> utoipa::ToSchema for Id<E> {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Id")
    }
}

/// An optional id in a query string (`?merchant_id=...`): absent is `None`,
/// anything but a valid id is 400 naming the parameter.
pub fn id_param<E>(
    raw: Option<&str>,
    what: &str,
) -> Result<Option<Id<E>>, crate::core::error::ApiError> {
    raw.map(|v| {
        v.parse::<i64>().ok().and_then(Id::new).ok_or_else(|| {
            crate::core::error::ApiError::invalid_input(format!("{what} must be an id"))
        })
    })
    .transpose()
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
