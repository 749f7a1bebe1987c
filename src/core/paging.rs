//! `?limit=` (1-200, default 50) and opaque keyset cursors.

use serde::Deserialize;

use crate::core::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        parse_limit(self.limit.as_deref())
    }

    /// The id of a one-value keyset cursor (`None` on the first page).
    pub fn cursor_id(&self) -> Result<Option<i64>, ApiError> {
        cursor_id(self.cursor.as_deref())
    }
}

pub fn parse_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_input(
                "limit must be an integer from 1 to 200",
            )),
        },
    }
}

/// Encodes keyset values as an opaque token (hex of `v1:a:b:...`).
pub fn encode_cursor(parts: &[i64]) -> String {
    let joined: Vec<String> = parts.iter().map(i64::to_string).collect();
    hex::encode(format!("v1:{}", joined.join(":")))
}

/// Decodes a token made by [`encode_cursor`] with exactly `n` values; else 400.
pub fn decode_cursor(token: &str, n: usize) -> Result<Vec<i64>, ApiError> {
    let bad = || ApiError::invalid_input("invalid cursor");
    let bytes = hex::decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let rest = text.strip_prefix("v1:").ok_or_else(bad)?;
    let parts: Vec<i64> = rest
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if parts.len() != n {
        return Err(bad());
    }
    Ok(parts)
}

/// Keeps the first `limit` of `rows` fetched with `LIMIT limit + 1`. The extra
/// row only says another page exists: then the cursor is the last kept row's
/// keyset; else `None` (the contract's null on the last page).
pub fn trim_page<R>(rows: &mut Vec<R>, limit: i64, key: impl Fn(&R) -> Vec<i64>) -> Option<String> {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if more {
        rows.last().map(|r| encode_cursor(&key(r)))
    } else {
        None
    }
}

/// The id a one-value keyset cursor carries, if one was given; else 400.
pub fn cursor_id(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| decode_cursor(c, 1).map(|v| v[0]))
        .transpose()
}

/// A page of a list, as every list route answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&[5, -7]);
        assert_eq!(decode_cursor(&c, 2).unwrap(), vec![5, -7]);
        assert!(decode_cursor(&c, 1).is_err());
        assert!(decode_cursor("zz", 1).is_err());
        assert!(decode_cursor(&hex::encode("v2:1"), 1).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), 50);
        assert_eq!(parse_limit(Some("200")).unwrap(), 200);
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("201")).is_err());
        assert!(parse_limit(Some("x")).is_err());
    }
}
