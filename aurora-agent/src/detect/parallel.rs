//! An ordered parallel map for loading rules: rule files, and the rule sets built from them,
//! are independent, and loading is a tenth of a short replay. Workers (the calling thread is
//! one) take the next item from a shared counter — a rule's compile cost varies a
//! hundredfold, so fixed chunks would leave a core idle — and the results come back in input
//! order, so reports and rule order do not depend on scheduling.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `f` over `items` on up to `max_threads` threads (fewer when the machine or the input is
/// smaller); one thread runs it in place, spawning nothing.
pub fn map_ordered<T, R, F>(items: Vec<T>, max_threads: usize, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(max_threads)
        .min(items.len());
    if threads < 2 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = slots.get(i) else {
                return done;
            };
            // Each index is taken once, so the lock is never contended nor poisoned by a
            // panic elsewhere; a poisoned slot still holds its item.
            let item = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(item) = item {
                done.push((i, f(item)));
            }
        }
    };
    let mut all = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in helpers {
            // A panic in a helper is a panic of this thread, as when run in place.
            all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_input_order_whatever_the_thread_count() {
        let items: Vec<u64> = (0..500).collect();
        let expected: Vec<u64> = items.iter().map(|i| i * i).collect();
        for threads in [0, 1, 2, 4, 64] {
            // Uneven work, so that workers finish out of order.
            let got = map_ordered(items.clone(), threads, |i| {
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                i * i
            });
            assert_eq!(got, expected, "{threads} threads");
        }
        assert!(map_ordered(Vec::<u8>::new(), 4, |i| i).is_empty());
    }
}
