//! Who may use the console: a users file of argon2 password hashes with a role each
//! (`operator` may act, `viewer` may only look), sessions that expire, and a CSRF token per
//! session that every state-changing request must carry.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

struct User {
    role: Role,
    hash: String,
}

/// The users file: `NAME ROLE ARGON2-PHC` per line, `#` comments.
pub struct Users(HashMap<String, User>);

impl Users {
    pub fn load(path: &Path) -> Result<Users> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("--users {}", path.display()))?;
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| anyhow::anyhow!("{}:{}: {why}", path.display(), i + 1);
            let mut parts = line.split_whitespace();
            let (Some(name), Some(role), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected NAME ROLE HASH"));
            };
            let role = Role::parse(role).ok_or_else(|| bad("role must be operator or viewer"))?;
            PasswordHash::new(hash).map_err(|e| bad(&format!("not an argon2 hash ({e})")))?;
            users.insert(
                name.to_owned(),
                User {
                    role,
                    hash: hash.to_owned(),
                },
            );
        }
        if users.is_empty() {
            bail!(
                "--users {}: no users (add one with --add-user)",
                path.display()
            );
        }
        Ok(Users(users))
    }

    /// The user's role when the password is theirs.
    pub fn check(&self, name: &str, password: &str) -> Option<Role> {
        let user = self.0.get(name)?;
        let hash = PasswordHash::new(&user.hash).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()
            .map(|()| user.role)
    }
}

/// Add (or replace) `name` in the users file with `password` hashed.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        bail!("{name:?}: a user name has no spaces");
    }
    if password.len() < 8 {
        bail!("a password has at least 8 characters");
    }
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        .to_string();
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = old
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(name))
        .map(String::from)
        .collect();
    lines.push(format!("{name} {} {hash}", role.name()));
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    use std::io::Write as _;
    writeln!(f, "{}", lines.join("\n"))?;
    Ok(())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the kernel's random source");
    b
}

fn token() -> String {
    data_encoding::HEXLOWER.encode(&random_bytes::<32>())
}

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    expires: Instant,
}

/// Sessions by cookie token, each until its absolute expiry.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// A new session; its cookie token.
    pub fn open(&self, user: &str, role: Role) -> String {
        let t = token();
        let s = Session {
            user: user.to_owned(),
            role,
            csrf: token(),
            expires: Instant::now() + self.ttl,
        };
        if let Ok(mut m) = self.map.lock() {
            let now = Instant::now();
            m.retain(|_, s| s.expires > now);
            m.insert(t.clone(), s);
        }
        t
    }

    pub fn get(&self, token: &str) -> Option<Session> {
        let mut m = self.map.lock().ok()?;
        match m.get(token) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                m.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, token: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(token);
        }
    }
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_check_passwords_and_roles() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("users");
        add_user(&f, "ann", Role::Operator, "correct horse").unwrap();
        add_user(&f, "bob", Role::Viewer, "battery staple").unwrap();
        add_user(&f, "ann", Role::Operator, "new password").unwrap();
        let u = Users::load(&f).unwrap();
        assert_eq!(u.check("ann", "new password"), Some(Role::Operator));
        assert_eq!(u.check("ann", "correct horse"), None);
        assert_eq!(u.check("bob", "battery staple"), Some(Role::Viewer));
        assert_eq!(u.check("eve", "battery staple"), None);
        std::fs::write(&f, "ann admin $argon2id$x\n").unwrap();
        let e = Users::load(&f).err().unwrap().to_string();
        assert!(e.contains(":1: role"), "{e}");
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_millis(50));
        let t = s.open("ann", Role::Viewer);
        assert_eq!(s.get(&t).unwrap().user, "ann");
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&t).is_none());
        let t = Sessions::new(Duration::from_secs(60)).open("ann", Role::Viewer);
        assert!(s.get(&t).is_none(), "another set's token");
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
