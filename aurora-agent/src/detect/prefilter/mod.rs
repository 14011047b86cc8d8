//! Rule prefilter: which rules must be evaluated for an event, decided with one Aho-Corasick
//! scan per indexed field instead of evaluating every rule. `anchor` derives, per rule, atoms
//! whose absence decides the rule (see its docs); this module indexes them and answers per
//! event. Every rule it does not decide is evaluated exactly by rsigma, so the prefilter can
//! only save time, never change a result (`RuleSet::evaluate_all` is the reference in tests).
//!
//! Why not rsigma's own cross-rule index: it only prunes rules made purely of positive
//! substring matchers with negation-free conditions. Most Sigma rules are `selection and not
//! filter`, so with 1,183 rules it still evaluated nearly all of them on every event.
pub mod anchor;

use std::collections::BTreeMap;

use daachorse::{DoubleArrayAhoCorasick, DoubleArrayAhoCorasickBuilder};
use rsigma_eval::event::EventValue;

use crate::event::Event;
use anchor::{Class, Pos, Test};

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
    /// Over the `Contains` needles of every rule with an atom on this field.
    automaton: Option<DoubleArrayAhoCorasick<u32>>,
    /// Pattern id → rules with that needle, and where it must occur for each.
    rules_of: Vec<Vec<(u32, Pos)>>,
    /// Rules with a regex-derived atom on this field: hit by any non-ASCII value.
    regex_rules: Vec<u32>,
    /// Rules with an `Absent` atom: hit when the field is missing.
    absent_rules: Vec<u32>,
    /// Rules with an `Empty` atom: hit when the value is "".
    empty_rules: Vec<u32>,
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
    /// Per-event bitset of rules with a hit, reused.
    hits: Vec<u64>,
    /// Reused buffer for lowering ASCII values with capitals.
    lowered: String,
}

fn set_bit(bits: &mut [u64], i: u32) {
    bits[i as usize / 64] |= 1 << (i % 64);
}

impl Prefilter {
    /// The prefilter of `rules`, classifying each (tests; the loader classifies rules as it
    /// compiles them, on its threads, and calls `from_classes`).
    pub fn build(rules: &[rsigma_eval::CompiledRule]) -> Prefilter {
        Prefilter::from_classes(rules.iter().map(anchor::classify).collect())
    }

    /// The prefilter of rules whose classes are `classes`, in rule order.
    pub fn from_classes(classes: Vec<Class>) -> Prefilter {
        let words = classes.len().div_ceil(64);
        let mut always = vec![0u64; words];
        let mut inverse = vec![0u64; words];
        // Per field (in name order): its index and its needles (in needle order, which fixes
        // the pattern ids).
        type Needles = BTreeMap<String, Vec<(u32, Pos)>>;
        let mut by_field: BTreeMap<String, (FieldIndex, Needles)> = BTreeMap::new();
        for (i, class) in classes.into_iter().enumerate() {
            let i = i as u32;
            let atoms = match class {
                Class::Always => {
                    set_bit(&mut always, i);
                    continue;
                }
                Class::Anchored(a) => a,
                Class::Inverse(a) => {
                    set_bit(&mut inverse, i);
                    a
                }
            };
            for a in atoms {
                let (fi, needles) = by_field.entry(a.field).or_default();
                if a.from_regex && fi.regex_rules.last() != Some(&i) {
                    fi.regex_rules.push(i);
                }
                match a.test {
                    Test::Absent => fi.absent_rules.push(i),
                    Test::Empty => fi.empty_rules.push(i),
                    Test::Substr(n, pos) => needles.entry(n).or_default().push((i, pos)),
                }
            }
        }
        let mut fields = Vec::new();
        for (name, (mut fi, needles)) in by_field {
            if !needles.is_empty() {
                let list: Vec<(String, Vec<(u32, Pos)>)> = needles.into_iter().collect();
                let patterns: Vec<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
                // Without daachorse's SOG prefilter: a 64 KB table per automaton (1.6 MB over
                // the SigmaHQ fields) to skip ahead in haystacks that are mostly shorter than a
                // cache line's worth of scanning.
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
                        fi.rules_of = list.into_iter().map(|(_, r)| r).collect();
                    }
                    // Cannot happen for sane sizes; if it does, those rules are always run.
                    Err(e) => {
                        tracing::warn!("prefilter for field {name} not built: {e}");
                        for (i, _) in list.into_iter().flat_map(|(_, r)| r) {
                            set_bit(&mut always, i);
                            inverse[i as usize / 64] &= !(1 << (i % 64));
                        }
                    }
                }
            }
            fi.field = name;
            fields.push(fi);
        }
        Prefilter {
            name_bits: fields.iter().map(|fi| name_bit(&fi.field)).collect(),
            fields,
            always,
            inverse,
            hits: vec![0; words],
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
        self.hits.copy_from_slice(&self.always);
        let names = name_mask(event);
        for (fi, &bit) in self.fields.iter().zip(&self.name_bits) {
            let value = if names & bit == 0 {
                None
            } else {
                event.get(&fi.field)
            };
            match value {
                None => mark(&mut self.hits, &fi.absent_rules),
                Some(v) => mark_value(fi, &v.as_event_value(), &mut self.hits, &mut self.lowered),
            }
        }
        for (w, (&hit, &inv)) in self.hits.iter().zip(&self.inverse).enumerate() {
            let mut bits = hit | inv;
            while bits != 0 {
                let b = bits.trailing_zeros();
                let verdict = if hit & (1 << b) != 0 {
                    Verdict::Evaluate
                } else {
                    Verdict::Matches
                };
                visit(w * 64 + b as usize, verdict);
                bits &= bits - 1;
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

fn mark(hits: &mut [u64], rules: &[u32]) {
    for &r in rules {
        set_bit(hits, r);
    }
}

/// Mirrors rsigma's string projection of values: numbers and bools by their text, arrays by
/// their members.
fn mark_value(fi: &FieldIndex, value: &EventValue, hits: &mut [u64], lowered: &mut String) {
    if value.is_null() {
        mark(hits, &fi.absent_rules);
        return;
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

fn mark_str(fi: &FieldIndex, s: &str, hits: &mut [u64], lowered: &mut String) {
    if s.is_empty() {
        mark(hits, &fi.empty_rules);
        return;
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
        mark(hits, &fi.regex_rules);
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
        for &(r, pos) in &fi.rules_of[m.value() as usize] {
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
    use crate::event::{Event, EventKind};

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
