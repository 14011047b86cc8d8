//! Rule prefilter: which rules must be evaluated for an event, decided with one Aho-Corasick
//! scan per indexed field instead of evaluating every rule. `anchor` derives, per rule, clauses
//! of atoms, any clause without a hit deciding the rule (see its docs); this module indexes
//! them and answers per event. Each clause has a *slot*, a bit in the per-event hit set: a
//! rule's best clause uses the rule's own index, its further clauses slots after the rules. Every rule it does not decide is evaluated exactly by rsigma, so the prefilter can
//! only save time, never change a result (`RuleSet::evaluate_all` is the reference in tests).
//!
//! Why not rsigma's own cross-rule index: it only prunes rules made purely of positive
//! substring matchers with negation-free conditions. Most Sigma rules are `selection and not
//! filter`, so with 1,183 rules it still evaluated nearly all of them on every event.
pub mod anchor;
mod build;

use daachorse::DoubleArrayAhoCorasick;
use rsigma_eval::event::EventValue;

use crate::event::Event;
use anchor::{Class, Pos};
use build::Slots;

/// What the prefilter says about one rule for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Must be evaluated.
    Evaluate,
    /// Matches with no matched selection (an inverse rule none of whose detections can be
    /// true); no evaluation needed.
    Matches,
}

/// Everything indexed on one field.
#[derive(Default)]
struct FieldIndex {
    field: String,
    /// Over the `Contains` needles of every clause with an atom on this field.
    automaton: Option<DoubleArrayAhoCorasick<u32>>,
    /// Pattern id → slots of the clauses with that needle, and where it must occur for each.
    slots_of: Vec<Vec<(u32, Pos)>>,
    /// Slots of clauses with a regex-derived atom on this field: hit by any non-ASCII value.
    regex_slots: Vec<u32>,
    /// Slots of clauses with an `Absent` atom: hit when the field is missing.
    absent_slots: Vec<u32>,
    /// Slots of clauses with an `Empty` atom: hit when the value is "".
    empty_slots: Vec<u32>,
    /// `MinLen` atoms, shortest first: (bytes, slot), hit by a value at least that long.
    min_len_slots: Vec<(usize, u32)>,
    /// `NumEq` atoms, by number: (number, slot).
    number_slots: Vec<(i64, u32)>,
}

/// Per-event rule selection for one rule set.
pub struct Prefilter {
    fields: Vec<FieldIndex>,
    /// Per field (as `fields`), its bit in an event's `name_mask`.
    name_bits: Vec<u64>,
    /// Bitset of rules without an anchor (always evaluated).
    always: Vec<u64>,
    /// Bitset of inverse rules (match when none of their atoms hits).
    inverse: Vec<u64>,
    /// Per rule: the slots of its further clauses (a start and an end), all of which must have
    /// a hit for the rule to be a candidate. They follow the rules' slots rounded up to whole
    /// words, so the rule words of `hits` can be read alone.
    extra: Vec<(u32, u32)>,
    /// Per-event bitset of slots with a hit, reused: rules first, then further clauses.
    hits: Vec<u64>,
    /// Reused buffer for lowering ASCII values with capitals.
    lowered: String,
}

fn set_bit(bits: &mut [u64], i: u32) {
    bits[i as usize / 64] |= 1 << (i % 64);
}

fn bit(bits: &[u64], i: u32) -> bool {
    bits[i as usize / 64] & (1 << (i % 64)) != 0
}

impl Prefilter {
    /// The prefilter of `rules`, classifying each (tests; the loader classifies rules as it
    /// compiles them, on its threads, and calls `from_classes`).
    pub fn build(rules: &[rsigma_eval::CompiledRule]) -> Prefilter {
        Prefilter::from_classes(rules.iter().map(anchor::classify).collect())
    }

    /// The prefilter of rules whose classes are `classes`, in rule order.
    pub fn from_classes(classes: Vec<Class>) -> Prefilter {
        let mut slots = Slots::new(classes.len());
        for (i, class) in classes.into_iter().enumerate() {
            slots.add_rule(i as u32, class);
        }
        let by_field = std::mem::take(&mut slots.by_field);
        let fields: Vec<FieldIndex> = by_field
            .into_iter()
            .map(|(name, (fi, needles))| slots.index_field(name, fi, needles))
            .collect();
        Prefilter {
            name_bits: fields.iter().map(|fi| name_bit(&fi.field)).collect(),
            fields,
            hits: vec![0; (slots.next_extra as usize).div_ceil(64)],
            always: slots.always,
            inverse: slots.inverse,
            extra: slots.extra,
            lowered: String::new(),
        }
    }

    /// Number of fields indexed.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// Number of rules evaluated on every event (not decided by the prefilter).
    pub fn unanchored(&self) -> usize {
        self.always.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Number of inverse rules (decided as matching when none of their atoms hits).
    pub fn inverse(&self) -> usize {
        self.inverse.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Calls `visit(rule_index, verdict)` for every rule that must be evaluated or is known to
    /// match, in increasing rule order. Rules not visited do not match.
    ///
    /// An indexed field whose bit is not in the event's name mask is absent without a look at
    /// the event's fields: a lookup of a missing name scanned all of them, and the scale rules'
    /// Windows fields (`OriginalFileName`, `Hashes`, ...) made that most of the detector's
    /// own time.
    pub fn candidates(&mut self, event: &Event, mut visit: impl FnMut(usize, Verdict)) {
        let words = self.always.len();
        self.hits[..words].copy_from_slice(&self.always);
        self.hits[words..].fill(0);
        let names = name_mask(event);
        for (fi, &bit) in self.fields.iter().zip(&self.name_bits) {
            if fi.field == anchor::ANY_VALUE {
                mark_any(fi, event, &mut self.hits, &mut self.lowered);
                continue;
            }
            let value = if names & bit == 0 {
                None
            } else {
                event.get(&fi.field)
            };
            match value {
                None => mark(&mut self.hits, &fi.absent_slots),
                Some(v) => mark_value(fi, &v.as_event_value(), &mut self.hits, &mut self.lowered),
            }
        }
        let hits = &self.hits;
        for (w, (&hit, &inv)) in hits[..words].iter().zip(&self.inverse).enumerate() {
            let mut bits = hit | inv;
            while bits != 0 {
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                let rule = w * 64 + b as usize;
                let verdict = if hit & (1 << b) == 0 {
                    Verdict::Matches
                } else {
                    // A rule with further clauses is a candidate only if each has a hit.
                    let (lo, hi) = self.extra[rule];
                    if !(lo..hi).all(|slot| bit(hits, slot)) {
                        continue;
                    }
                    Verdict::Evaluate
                };
                visit(rule, verdict);
            }
        }
    }
}

/// A name's bit in a 64-bit set of names, from its length and first and last bytes (what
/// `Event::get` compares before the bytes in between).
fn name_bit(name: &str) -> u64 {
    let b = name.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    let h = (b.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(first.unwrap_or(0)).wrapping_mul(7))
        .wrapping_add(u32::from(last.unwrap_or(0)));
    1 << (h % 64)
}

/// The bits of every field name of `event`.
fn name_mask(event: &Event) -> u64 {
    event
        .fields
        .iter()
        .fold(0, |mask, (name, _)| mask | name_bit(name))
}

/// Keyword needles: the event's log line when its kind has one (every value is in it), else
/// each string value (what rsigma's keyword matching looks at).
fn mark_any(fi: &FieldIndex, event: &Event, hits: &mut [u64], lowered: &mut String) {
    let scanned_line = crate::event::with_keyword_text(event, |line| match line {
        Some(l) => {
            mark_str(fi, l, hits, lowered);
            true
        }
        None => false,
    });
    if scanned_line {
        return;
    }
    for (_, v) in &event.fields {
        if let crate::event::Value::Str(s) = v {
            mark_str(fi, s, hits, lowered);
        }
    }
}

fn mark(hits: &mut [u64], rules: &[u32]) {
    for &r in rules {
        set_bit(hits, r);
    }
}

/// Mirrors rsigma's string projection of values: numbers and bools by their text, arrays by
/// their members.
fn mark_value(fi: &FieldIndex, value: &EventValue, hits: &mut [u64], lowered: &mut String) {
    if value.is_null() {
        mark(hits, &fi.absent_slots);
        return;
    }
    if !fi.number_slots.is_empty() {
        mark_number(fi, value, hits);
    }
    match value {
        EventValue::Str(s) => mark_str(fi, s, hits, lowered),
        EventValue::Int(n) => mark_str(fi, &n.to_string(), hits, lowered),
        EventValue::Float(f) => mark_str(fi, &f.to_string(), hits, lowered),
        EventValue::Bool(b) => mark_str(fi, if *b { "true" } else { "false" }, hits, lowered),
        EventValue::Array(members) => {
            for m in members {
                mark_value(fi, m, hits, lowered);
            }
        }
        _ => {}
    }
}

/// Hits the `NumEq` atoms of the value's number, read as rsigma reads it (an integer, a float
/// or a string parsed as f64). rsigma's test is `|v - n| < f64::EPSILON`: for an integral `n`
/// that means `n` is `v` rounded, and `v` within a hair of it (here a wider one: more hits only
/// cost an evaluation).
fn mark_number(fi: &FieldIndex, value: &EventValue, hits: &mut [u64]) {
    let v = match value {
        EventValue::Int(n) => *n as f64,
        EventValue::Float(f) => *f,
        EventValue::Str(s) => match s.parse::<f64>() {
            Ok(v) => v,
            Err(_) => return,
        },
        _ => return, // arrays: each member on its own, from mark_value
    };
    let r = v.round();
    if (v - r).abs() >= 1e-6 || r.abs() > i64::MAX as f64 {
        return;
    }
    let n = r as i64;
    let from = fi.number_slots.partition_point(|&(k, _)| k < n);
    for &(_, slot) in fi.number_slots[from..].iter().take_while(|&&(k, _)| k == n) {
        set_bit(hits, slot);
    }
}

fn mark_str(fi: &FieldIndex, s: &str, hits: &mut [u64], lowered: &mut String) {
    if s.is_empty() {
        mark(hits, &fi.empty_slots);
        return;
    }
    for &(_, slot) in fi.min_len_slots.iter().take_while(|(n, _)| *n <= s.len()) {
        set_bit(hits, slot);
    }
    if !s.is_ascii() {
        mark(hits, &fi.regex_slots);
    }
    let Some(automaton) = &fi.automaton else {
        return;
    };
    // Needles are stored lowered, so the value is lowered exactly as rsigma lowers it before
    // comparing: ASCII in a reused buffer (and only when it has capitals), anything else with
    // rsigma's own function (`str::to_lowercase`, whose final-sigma rule a per-character
    // lowering would miss).
    let unicode;
    let hay = if !s.is_ascii() {
        unicode = rsigma_eval::matcher::ascii_lowercase_cow(s);
        &*unicode
    } else if s.bytes().any(|b| b.is_ascii_uppercase()) {
        lowered.clear();
        lowered.push_str(s);
        lowered.make_ascii_lowercase();
        lowered.as_str()
    } else {
        s
    };
    for m in automaton.find_overlapping_iter(hay) {
        let (start, end) = (m.start() == 0, m.end() == hay.len());
        for &(r, pos) in &fi.slots_of[m.value() as usize] {
            let placed = match pos {
                Pos::Anywhere => true,
                Pos::Start => start,
                Pos::End => end,
                Pos::Whole => start && end,
            };
            if placed {
                set_bit(hits, r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::anchor::tests::rule;
    use super::*;
    use crate::event::{Event, EventKind, Value};

    fn run(p: &mut Prefilter, fields: &[(&'static str, &str)]) -> Vec<(usize, Verdict)> {
        let mut ev = Event::new(EventKind::ProcessCreation);
        for (k, v) in fields {
            ev.push_str(k, *v);
        }
        let mut seen = vec![];
        p.candidates(&ev, |i, v| seen.push((i, v)));
        seen
    }

    #[test]
    fn candidates_are_unanchored_hit_and_undecided_rules() {
        use Verdict::*;
        let rules = vec![
            rule("  s:\n    Image|endswith: '/wget'\n  condition: s"),
            rule("  s:\n    CommandLine|re: '[a-z]+'\n  condition: s"),
            rule("  s:\n    CommandLine|re: 'ab+c'\n  condition: s"),
            rule("  s:\n    CommandLine|contains: 'ÄBC'\n  condition: s"),
            rule("  f:\n    Image|contains: '\\'\n  n:\n    Image: null\n  condition: not f and not n"),
        ];
        let mut p = Prefilter::build(&rules);
        assert_eq!((p.unanchored(), p.inverse()), (1, 1));
        // Rule 2 is anchored by its regex's literals; the value is not ASCII, so it is a
        // candidate anyway. Rule 4 (inverse) has no hit: it matches without evaluation.
        assert_eq!(
            run(
                &mut p,
                &[("Image", "/usr/bin/WGET"), ("CommandLine", "run äbc now")]
            ),
            vec![
                (0, Evaluate),
                (1, Evaluate),
                (2, Evaluate),
                (3, Evaluate),
                (4, Matches)
            ]
        );
        assert_eq!(
            run(
                &mut p,
                &[("Image", "/usr/bin/ls"), ("CommandLine", "xAbbC")]
            ),
            vec![(1, Evaluate), (2, Evaluate), (4, Matches)]
        );
        // A Windows path or a missing Image hits rule 4's atoms: it must be evaluated.
        assert_eq!(
            run(&mut p, &[("Image", "C:\\x.exe")]),
            vec![(1, Evaluate), (4, Evaluate)]
        );
        assert_eq!(
            run(&mut p, &[("CommandLine", "zz")]),
            vec![(1, Evaluate), (4, Evaluate)]
        );
    }

    /// The mask may say "maybe" for a missing name (two names share a bit), never "no" for a
    /// present one.
    #[test]
    fn the_name_mask_never_hides_a_present_field() {
        let names = crate::event::names::NUMERIC.iter().chain(&[
            "Image",
            "CommandLine",
            "OriginalFileName",
            "Hashes",
            "",
            "x",
            "ParentUser",
        ]);
        let mut ev = Event::new(EventKind::ProcessCreation);
        for (i, n) in names.clone().enumerate() {
            if i % 2 == 0 {
                ev.push_str(n, "v");
            }
        }
        let mask = name_mask(&ev);
        for n in names {
            if ev.get(n).is_some() {
                assert_ne!(mask & name_bit(n), 0, "{n}");
            }
        }
    }

    #[test]
    fn non_ascii_values_are_lowered_as_rsigma_lowers_them() {
        use Verdict::*;
        // rsigma stores the needle as "ας" (final sigma) and lowers "xΑΣ" to "xας"; lowering
        // character by character would give "xασ" and skip a rule that matches.
        let rules = vec![rule("  s:\n    CommandLine|endswith: 'ΑΣ'\n  condition: s")];
        let mut p = Prefilter::build(&rules);
        assert_eq!(run(&mut p, &[("CommandLine", "xΑΣ")]), vec![(0, Evaluate)]);
        assert_eq!(run(&mut p, &[("CommandLine", "xΑΣy")]), vec![]);
    }

    #[test]
    fn a_rule_with_several_clauses_needs_a_hit_in_each() {
        use Verdict::*;
        let rules = vec![
            rule("  s:\n    Image|endswith: '/sh'\n    CommandLine|contains: '/tmp/'\n  condition: s"),
            rule("  s:\n    Image|endswith: '/sh'\n  condition: s"),
            rule("  a:\n    User: root\n  b:\n    Image|endswith: '/sh'\n  condition: a and b"),
        ];
        let mut p = Prefilter::build(&rules);
        assert_eq!(
            run(&mut p, &[("Image", "/bin/sh"), ("CommandLine", "ls")]),
            vec![(1, Evaluate)]
        );
        assert_eq!(
            run(
                &mut p,
                &[
                    ("Image", "/bin/sh"),
                    ("CommandLine", "sh /tmp/x"),
                    ("User", "root")
                ]
            ),
            vec![(0, Evaluate), (1, Evaluate), (2, Evaluate)]
        );
        assert_eq!(
            run(
                &mut p,
                &[
                    ("Image", "/bin/ls"),
                    ("CommandLine", "/tmp/"),
                    ("User", "root")
                ]
            ),
            vec![]
        );
    }

    #[test]
    fn a_length_atom_hits_values_at_least_that_long() {
        use Verdict::*;
        let rules = vec![rule(
            "  s:\n    TargetFilename|re: '[^/]{100,}$'\n  condition: s",
        )];
        let mut p = Prefilter::build(&rules);
        // `n` bytes in all.
        let name = |n: usize| format!("/tmp/{}", "a".repeat(n - 5));
        assert_eq!(run(&mut p, &[("TargetFilename", &name(99))]), vec![]);
        assert_eq!(
            run(&mut p, &[("TargetFilename", &name(100))]),
            vec![(0, Evaluate)]
        );
        // Not ASCII: counts as hit whatever its length (lowering may change it).
        assert_eq!(
            run(&mut p, &[("TargetFilename", "/tmp/é")]),
            vec![(0, Evaluate)]
        );
    }

    #[test]
    fn number_atoms_hit_the_number_however_written() {
        use Verdict::*;
        let rules = vec![rule(
            "  s:\n    DestinationPort:\n      - 4444\n      - 888\n  condition: s",
        )];
        let mut p = Prefilter::build(&rules);
        let mut with = |v: Value| {
            let mut ev = Event::new(EventKind::ProcessCreation);
            ev.push_str("Image", "/x");
            ev.set("DestinationPort", v);
            let mut seen = vec![];
            p.candidates(&ev, |i, v| seen.push((i, v)));
            seen
        };
        for hit in ["4444", "4444.0", "+888", "8.88e2"] {
            assert_eq!(with(Value::Str(hit.into())), vec![(0, Evaluate)], "{hit}");
        }
        assert_eq!(with(Value::Int(888)), vec![(0, Evaluate)]);
        for miss in ["4445", "444", "4444.5", "x4444", "inf", "NaN"] {
            assert_eq!(with(Value::Str(miss.into())), vec![], "{miss}");
        }
        assert_eq!(with(Value::Int(80)), vec![]);
    }

    #[test]
    fn needles_must_sit_where_the_matcher_looks() {
        use Verdict::*;
        let rules = vec![
            rule("  s:\n    Image: '-'\n  condition: s"),
            rule("  s:\n    Image|startswith: '/tmp/'\n  condition: s"),
            rule("  s:\n    Image|endswith: '/nc'\n  condition: s"),
        ];
        let mut p = Prefilter::build(&rules);
        assert_eq!(run(&mut p, &[("Image", "/usr/bin/apt-get")]), vec![]);
        assert_eq!(run(&mut p, &[("Image", "/var/tmp/ncat")]), vec![]);
        assert_eq!(run(&mut p, &[("Image", "-")]), vec![(0, Evaluate)]);
        assert_eq!(
            run(&mut p, &[("Image", "/TMP/x/nc")]),
            vec![(1, Evaluate), (2, Evaluate)]
        );
    }
}
