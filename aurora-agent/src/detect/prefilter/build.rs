//! Building the prefilter's tables: each clause of each rule gets a slot (a bit in the
//! per-event hit set) and its atoms are indexed per field, one automaton over each field's
//! needles.
use std::collections::BTreeMap;

use daachorse::DoubleArrayAhoCorasickBuilder;

use super::anchor::{Class, Pos, Test};
use super::{set_bit, FieldIndex};

/// Needles of one field: needle → slots of the clauses with it, and where it must occur for
/// each. In needle order, which fixes the pattern ids.
pub(super) type Needles = BTreeMap<String, Vec<(u32, Pos)>>;

/// The prefilter's tables while they are built: which slot each clause gets, and per field (in
/// name order) what it indexes.
pub(super) struct Slots {
    pub(super) always: Vec<u64>,
    pub(super) inverse: Vec<u64>,
    pub(super) extra: Vec<(u32, u32)>,
    /// Slot of the first further clause: the rule slots rounded up to whole words.
    first_extra: u32,
    pub(super) next_extra: u32,
    pub(super) by_field: BTreeMap<String, (FieldIndex, Needles)>,
}

impl Slots {
    pub(super) fn new(rules: usize) -> Slots {
        let words = rules.div_ceil(64);
        let first_extra = (words * 64) as u32;
        Slots {
            always: vec![0; words],
            inverse: vec![0; words],
            extra: Vec::with_capacity(rules),
            first_extra,
            next_extra: first_extra,
            by_field: BTreeMap::new(),
        }
    }

    /// Rule `i`'s first clause takes slot `i`, its further clauses the next free slots.
    pub(super) fn add_rule(&mut self, i: u32, class: Class) {
        let clauses = match class {
            Class::Always => {
                set_bit(&mut self.always, i);
                vec![]
            }
            Class::Anchored(a) => a,
            Class::Inverse(a) => {
                set_bit(&mut self.inverse, i);
                vec![a]
            }
        };
        let start = self.next_extra;
        for (c, clause) in clauses.into_iter().enumerate() {
            let slot = if c == 0 {
                i
            } else {
                self.next_extra += 1;
                self.next_extra - 1
            };
            for a in clause {
                let (fi, needles) = self.by_field.entry(a.field).or_default();
                if a.from_regex && fi.regex_slots.last() != Some(&slot) {
                    fi.regex_slots.push(slot);
                }
                match a.test {
                    Test::Absent => fi.absent_slots.push(slot),
                    Test::Empty => fi.empty_slots.push(slot),
                    Test::MinLen(n) => fi.min_len_slots.push((n, slot)),
                    Test::NumEq(n) => fi.number_slots.push((n, slot)),
                    Test::Substr(n, pos) => needles.entry(n).or_default().push((slot, pos)),
                }
            }
        }
        self.extra.push((start, self.next_extra));
    }

    /// `fi` with the automaton over `needles`.
    pub(super) fn index_field(
        &mut self,
        name: String,
        mut fi: FieldIndex,
        needles: Needles,
    ) -> FieldIndex {
        fi.min_len_slots.sort_unstable();
        fi.number_slots.sort_unstable();
        if !needles.is_empty() {
            let list: Vec<(String, Vec<(u32, Pos)>)> = needles.into_iter().collect();
            let patterns: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
            // Without daachorse's SOG prefilter: a 64 KB table per automaton (1.6 MB over the
            // SigmaHQ fields) to skip ahead in haystacks that are mostly shorter than a cache
            // line's worth of scanning.
            let built = DoubleArrayAhoCorasickBuilder::new()
                .use_prefilter(false)
                .build(&patterns);
            match built {
                Ok(ac) => {
                    tracing::debug!(
                        field = name.as_str(),
                        patterns = list.len(),
                        bytes = ac.heap_bytes(),
                        "prefilter automaton"
                    );
                    fi.automaton = Some(ac);
                    fi.slots_of = list.into_iter().map(|(_, r)| r).collect();
                }
                // Cannot happen for sane sizes; if it does, those rules are always run.
                Err(e) => {
                    tracing::warn!("prefilter for field {name} not built: {e}");
                    for (slot, _) in list.into_iter().flat_map(|(_, r)| r) {
                        self.evaluate_always(slot);
                    }
                }
            }
        }
        fi.field = name;
        fi
    }

    /// The rule owning `slot` is evaluated on every event, whatever its clauses hit.
    fn evaluate_always(&mut self, slot: u32) {
        let rule = if slot < self.first_extra {
            Some(slot as usize)
        } else {
            self.extra
                .iter()
                .position(|&(lo, hi)| (lo..hi).contains(&slot))
        };
        if let Some(i) = rule {
            set_bit(&mut self.always, i as u32);
            self.inverse[i / 64] &= !(1 << (i % 64));
            self.extra[i].1 = self.extra[i].0;
        }
    }
}
