//! uid → user name through the system user database (NSS: files, LDAP, sssd …), LRU-cached.
use std::sync::Arc;

use lru::LruCache;

pub struct UserCache {
    cache: LruCache<u32, Arc<str>>,
}

impl UserCache {
    pub fn new(capacity: usize) -> Self {
        UserCache {
            cache: super::growing_lru(capacity),
        }
    }

    /// The user name, or the uid as text when the database has no entry.
    pub fn name(&mut self, uid: u32) -> Arc<str> {
        if let Some(n) = self.cache.get(&uid) {
            return n.clone();
        }
        let name: Arc<str> = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name.into(),
            _ => uid.to_string().into(),
        };
        self.cache.put(uid, name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown() {
        let mut c = UserCache::new(4);
        assert_eq!(&*c.name(0), "root");
        assert_eq!(&*c.name(3_999_999_999), "3999999999");
        assert_eq!(&*c.name(0), "root");
    }
}
