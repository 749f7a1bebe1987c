//! Validated account inputs: parse at the edge, never re-check inside.

use serde::Deserialize;

use crate::core::text::{text_problem, Lines};

/// 3-32 characters of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Username(String);

impl TryFrom<String> for Username {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let n = s.chars().count();
        if !(3..=32).contains(&n) {
            return Err("username must be 3-32 characters".into());
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("username may contain only letters, digits and underscore".into());
        }
        Ok(Username(s))
    }
}

impl Username {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Usernames are unique regardless of case.
    pub fn lower(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// 8-128 characters (Unicode scalar values), anything allowed.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl TryFrom<String> for Password {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let n = s.chars().count();
        if !(8..=128).contains(&n) {
            return Err("password must be 8-128 characters".into());
        }
        Ok(Password(s))
    }
}

impl Password {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1-64 characters, no control characters, not only spaces.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct DisplayName(String);

impl TryFrom<String> for DisplayName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match text_problem(&s, 64, Lines::One, true) {
            Some(why) => Err(format!("display_name {why}")),
            None => Ok(DisplayName(s)),
        }
    }
}

impl DisplayName {
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// At most 500 characters; newlines and tabs allowed, other controls not.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Bio(String);

impl TryFrom<String> for Bio {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match text_problem(&s, 500, Lines::Many, false) {
            Some(why) => Err(format!("bio {why}")),
            None => Ok(Bio(s)),
        }
    }
}

impl Bio {
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An invite code as issued: 8 characters of an unambiguous alphabet.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct InviteCode(String);

pub const INVITE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const INVITE_LEN: usize = 8;

impl TryFrom<String> for InviteCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != INVITE_LEN || !upper.bytes().all(|b| INVITE_ALPHABET.contains(&b)) {
            return Err("unknown invite_code".into());
        }
        Ok(InviteCode(upper))
    }
}

impl InviteCode {
    pub fn generate() -> String {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        (0..INVITE_LEN)
            .map(|_| char::from(INVITE_ALPHABET[rng.gen_range(0..INVITE_ALPHABET.len())]))
            .collect()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Roles a user can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Merchant,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Merchant => "merchant",
            Role::Admin => "admin",
        }
    }
}

/// Roles are stored as a comma-separated list, e.g. `user,admin`.
pub fn parse_roles(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn has_role(roles: &str, role: Role) -> bool {
    parse_roles(roles).iter().any(|r| r == role.as_str())
}

pub fn with_role(roles: &str, role: Role) -> String {
    let mut list = parse_roles(roles);
    if !list.iter().any(|r| r == role.as_str()) {
        list.push(role.as_str().to_owned());
    }
    list.join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::try_from("ab".to_string()).is_err());
        assert!(Username::try_from("abc".to_string()).is_ok());
        assert!(Username::try_from("a".repeat(32)).is_ok());
        assert!(Username::try_from("a".repeat(33)).is_err());
        assert!(Username::try_from("robert'); DROP TABLE users;--".to_string()).is_err());
        assert!(Username::try_from("tab\there".to_string()).is_err());
        assert!(Username::try_from("名字名字".to_string()).is_err());
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        assert!(Password::try_from("1234567".to_string()).is_err());
        assert!(Password::try_from("密码密码密码密码".to_string()).is_ok());
        assert!(Password::try_from("x".repeat(129)).is_err());
    }

    #[test]
    fn roles_round_trip() {
        assert!(has_role("user,admin", Role::Admin));
        assert!(!has_role("user", Role::Admin));
        assert_eq!(with_role("user", Role::Admin), "user,admin");
        assert_eq!(with_role("user,admin", Role::Admin), "user,admin");
    }

    #[test]
    fn invite_codes() {
        let c = InviteCode::generate();
        assert!(InviteCode::try_from(c.to_lowercase()).is_ok());
        assert!(InviteCode::try_from("short".to_string()).is_err());
    }
}
