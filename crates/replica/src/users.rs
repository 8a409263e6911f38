//! Who may use a node's client port, as Redis does it: a password for the default user
//! (`AUTH password`) and named users with a role (`AUTH user password`, `HELLO 3 AUTH user
//! password`). The secrets come from files (never from flags, which show in `ps`); this is their
//! parsed form, shared by every connection.

use std::collections::BTreeMap;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads and writes.
    ReadWrite,
    /// Reads only: a write gets `-NOPERM`.
    ReadOnly,
}

/// The users of a node. Empty (no password, no users): every connection is the default user,
/// read-write, without authenticating, as a Redis without `requirepass`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Users {
    /// name -> (password, role). The default user, if it has a password, is "default".
    users: BTreeMap<String, (String, Role)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsersError {
    #[error("line {line}: expected `<name> <readwrite|readonly> <password>`")]
    Syntax { line: usize },
    #[error("line {line}: unknown role {role:?} (readwrite or readonly)")]
    Role { line: usize, role: String },
    #[error("line {line}: user {name:?} is listed twice")]
    Duplicate { line: usize, name: String },
    #[error("the password file is empty")]
    EmptyPassword,
}

impl Users {
    /// From a password file (its first line is the default user's password, read-write) and a
    /// users file (`<name> <readwrite|readonly> <password>` per line; `#` comments and blank lines
    /// ignored). Either may be absent.
    pub fn parse(password: Option<&str>, users: Option<&str>) -> Result<Users, UsersError> {
        let mut parsed = Users::default();
        if let Some(text) = users {
            for (number, line) in text.lines().enumerate().map(|(index, line)| (index + 1, line.trim())) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut words = line.splitn(3, char::is_whitespace);
                let (Some(name), Some(role), Some(secret)) = (words.next(), words.next(), words.next()) else {
                    return Err(UsersError::Syntax { line: number });
                };
                let role = match role {
                    "readwrite" => Role::ReadWrite,
                    "readonly" => Role::ReadOnly,
                    other => return Err(UsersError::Role { line: number, role: other.to_string() }),
                };
                if parsed.users.insert(name.to_string(), (secret.trim().to_string(), role)).is_some() {
                    return Err(UsersError::Duplicate { line: number, name: name.to_string() });
                }
            }
        }
        if let Some(text) = password {
            let secret = text.lines().next().unwrap_or("").trim_end_matches('\r');
            if secret.is_empty() {
                return Err(UsersError::EmptyPassword);
            }
            parsed.users.insert("default".to_string(), (secret.to_string(), Role::ReadWrite));
        }
        Ok(parsed)
    }

    /// Whether a connection must authenticate before anything else.
    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The role of `name` if `password` is theirs. Compared in time independent of where the
    /// first difference is, so that timing tells nothing of a password.
    pub fn check(&self, name: &str, password: &[u8]) -> Option<Role> {
        let (secret, role) = self.users.get(name)?;
        let secret = secret.as_bytes();
        let mut difference = secret.len() ^ password.len();
        for (index, byte) in password.iter().enumerate() {
            difference |= usize::from(byte ^ secret.get(index).copied().unwrap_or(!byte));
        }
        (difference == 0).then_some(*role)
    }

    /// Whether the default user has a password (`AUTH password` means anything).
    pub fn default_has_password(&self) -> bool {
        self.users.contains_key("default")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_into_users_with_roles() {
        let users = Users::parse(Some("s3cret\n"), Some("# readers\nreader readonly pass word\nwriter readwrite w\n")).expect("valid");
        assert!(users.required());
        assert_eq!(users.check("default", b"s3cret"), Some(Role::ReadWrite));
        assert_eq!(users.check("reader", b"pass word"), Some(Role::ReadOnly));
        assert_eq!(users.check("writer", b"w"), Some(Role::ReadWrite));
        assert_eq!(users.check("writer", b"W"), None);
        assert_eq!(users.check("writer", b"ww"), None);
        assert_eq!(users.check("writer", b""), None);
        assert_eq!(users.check("nobody", b"w"), None);
        assert!(!Users::parse(None, None).expect("valid").required());
    }

    #[test]
    fn bad_files_are_errors_naming_the_line() {
        assert_eq!(Users::parse(None, Some("a readwrite\n")), Err(UsersError::Syntax { line: 1 }));
        assert_eq!(Users::parse(None, Some("\na admin x\n")), Err(UsersError::Role { line: 2, role: "admin".into() }));
        assert_eq!(Users::parse(None, Some("a readonly x\na readonly y\n")), Err(UsersError::Duplicate { line: 2, name: "a".into() }));
        assert_eq!(Users::parse(Some("\n"), None), Err(UsersError::EmptyPassword));
    }
}
