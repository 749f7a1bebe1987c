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

/// Whether a text may span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// A name, a title, a reason: no line breaks or tabs.
    One,
    /// A body, a description, a message: `\n`, `\r` and `\t` are fine.
    Many,
}

/// The one rule for user text, everywhere (HTTP fields and chat):
/// - no control characters (C0, DEL, C1) but line breaks and tabs in
///   [`Lines::Many`] text: they break logs and terminals, and PostgreSQL's
///   TEXT cannot store NUL;
/// - no bidirectional embeddings, overrides or isolates (U+202A-U+202E,
///   U+2066-U+2069): they make text read differently from what it is
///   (a file name or a price spelled backwards);
/// - at most `max_chars` characters; a required text is not blank: not only
///   spaces and invisible characters (zero-width spaces and joiners, word
///   joiners, BOMs, fillers). Invisible characters inside text stay: emoji
///   sequences need the zero-width joiner.
///
/// Returns what is wrong, in the client's terms, or `None`.
pub fn text_problem(value: &str, max_chars: usize, lines: Lines, required: bool) -> Option<String> {
    let n = value.chars().count();
    if n > max_chars {
        return Some(format!("must be at most {max_chars} characters"));
    }
    if required && value.chars().all(is_blank_char) {
        return Some(if n == 0 {
            "must not be empty".to_owned()
        } else {
            "must not be blank (only spaces or invisible characters)".to_owned()
        });
    }
    if let Some(c) = value.chars().find(|c| is_forbidden_char(*c, lines)) {
        return Some(format!(
            "must not contain the character U+{:04X} (control or bidirectional formatting)",
            u32::from(c)
        ));
    }
    None
}

fn is_forbidden_char(c: char, lines: Lines) -> bool {
    let line_break = matches!(c, '\n' | '\r' | '\t');
    (c.is_control() && !(line_break && lines == Lines::Many))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whitespace and characters that show nothing.
fn is_blank_char(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{180E}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{2800}'
        )
}

/// `text_problem` as a 400 naming the field.
pub fn check_text(
    value: &str,
    what: &str,
    max_chars: usize,
    lines: Lines,
    required: bool,
) -> Result<(), crate::core::error::ApiError> {
    match text_problem(value, max_chars, lines, required) {
        Some(why) => Err(crate::core::error::ApiError::invalid_input(format!(
            "{what} {why}"
        ))),
        None => Ok(()),
    }
}

/// A required one-line text field (a name, a reason). Else 400 naming the field.
pub fn check_line(
    value: &str,
    what: &str,
    max_chars: usize,
) -> Result<(), crate::core::error::ApiError> {
    check_text(value, what, max_chars, Lines::One, true)
}

/// Free text (descriptions, messages): may be empty; line breaks are fine.
pub fn check_free_text(
    value: &str,
    what: &str,
    max_chars: usize,
) -> Result<(), crate::core::error::ApiError> {
    check_text(value, what, max_chars, Lines::Many, false)
}

/// A chat message body: required, line breaks are fine.
pub fn check_message_text(value: &str, max_chars: usize) -> Result<(), String> {
    match text_problem(value, max_chars, Lines::Many, true) {
        Some(why) => Err(format!("body {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_refuses_bidi_controls_and_invisible_only_text() {
        assert!(check_message_text("abc\u{202E}def", 4000).is_err());
        assert!(check_line("name\u{2066}x", "name", 64).is_err());
        assert!(check_line("\u{200B}\u{200B}", "name", 64).is_err());
        assert!(check_line(" \u{3164} ", "name", 64).is_err());
        assert!(check_message_text("\u{FEFF}", 4000).is_err());
        // A family emoji keeps its zero-width joiners.
        assert!(check_line("👨\u{200D}👩\u{200D}👧", "name", 64).is_ok());
        assert!(
            check_line("tab\there", "name", 64).is_err(),
            "one line, no tabs"
        );
        assert!(check_free_text("", "description", 10).is_ok());
        assert!(check_free_text("a\nb\tc", "description", 10).is_ok());
        assert!(check_free_text("a\u{202D}", "description", 10).is_err());
    }

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
