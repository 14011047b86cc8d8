//! Shares equal strings between process-table entries. In an exec storm thousands of entries
//! (kept 5 s after their process exited) carry the same image, command line and directory;
//! one allocation each instead of one per process keeps the agent's peak memory down.
use std::sync::Arc;

pub struct Interner {
    recent: lru::LruCache<Arc<str>, Arc<str>>,
}

impl Interner {
    pub fn new(capacity: usize) -> Self {
        Interner {
            recent: super::growing_lru(capacity),
        }
    }

    /// The shared copy of `s` (made now if `s` was not seen recently).
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.recent.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.recent.put(shared.clone(), shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation_and_the_cache_is_bounded() {
        let mut i = Interner::new(2);
        let a = i.intern("/usr/bin/true");
        let b = i.intern("/usr/bin/true");
        assert!(Arc::ptr_eq(&a, &b));
        i.intern("x");
        i.intern("y"); // evicts "/usr/bin/true"
        let c = i.intern("/usr/bin/true");
        assert_eq!(&*c, "/usr/bin/true");
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
