//! The compiled rules of one event kind and their prefilter: evaluates an event against only
//! the rules that can match it (see `prefilter`), each exactly with rsigma.
use rsigma_eval::result::ResultBody;
use rsigma_eval::{CompiledDetection, CompiledRule, Event as _};

use super::alert::MatchedField;
use super::prefilter::anchor::{self, Class};
use super::prefilter::{Prefilter, Verdict};
use crate::event::Event;

/// A compiled rule and its prefilter class: both per-rule work, done on the loading threads
/// (the class reads the rule's regexes; a third of building the process-creation set).
#[derive(Debug, Clone)]
pub struct PreparedRule {
    pub rule: CompiledRule,
    pub class: Class,
}

impl PreparedRule {
    pub fn new(rule: CompiledRule) -> Self {
        let class = anchor::classify(&rule);
        PreparedRule { rule, class }
    }
}

/// A rule that matched an event: which rule, and the selections that made it match.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    /// Index into the detector's rule metadata.
    pub meta: usize,
    /// Index of the compiled rule in this set (for `matched_fields`).
    pub rule: usize,
    pub selections: Vec<String>,
}

pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Index into the detector's rule metadata, per compiled rule.
    meta_of: Vec<usize>,
    prefilter: Prefilter,
    /// Per rule: whether its last evaluation matched. Such a rule (a `not filter` rule matches
    /// nearly every event) is evaluated with the naming pass alone, skipping the boolean pass
    /// and the result header `evaluate_rule` clones for every match.
    matched_last: Vec<bool>,
}

impl RuleSet {
    /// The set of `(meta index, prepared rule)` pairs, with its prefilter.
    pub fn build(prepared: Vec<(usize, PreparedRule)>) -> RuleSet {
        let mut meta_of = Vec::with_capacity(prepared.len());
        let mut rules = Vec::with_capacity(prepared.len());
        let mut classes = Vec::with_capacity(prepared.len());
        for (meta, p) in prepared {
            meta_of.push(meta);
            rules.push(p.rule);
            classes.push(p.class);
        }
        let prefilter = Prefilter::from_classes(classes);
        tracing::debug!(
            rules = rules.len(),
            unanchored = prefilter.unanchored(),
            fields = prefilter.field_count(),
            inverse = prefilter.inverse(),
            "rule set built"
        );
        RuleSet {
            matched_last: vec![false; rules.len()],
            rules,
            meta_of,
            prefilter,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules `ev` matches, in rule order, into `out` (cleared first). Only the prefilter's
    /// candidates are evaluated.
    pub fn evaluate(&mut self, ev: &Event, out: &mut Vec<RuleHit>) {
        out.clear();
        let rules = &self.rules;
        let meta_of = &self.meta_of;
        let matched_last = &mut self.matched_last;
        self.prefilter.candidates(ev, |i, verdict| {
            let matched = match verdict {
                Verdict::Matches => Some(Vec::new()),
                Verdict::Evaluate if matched_last[i] => named_matches(&rules[i], ev),
                Verdict::Evaluate => rule_matches(&rules[i], ev),
            };
            matched_last[i] = matched.is_some();
            if let Some(selections) = matched {
                out.push(RuleHit {
                    meta: meta_of[i],
                    rule: i,
                    selections,
                });
            }
        });
    }

    /// Every rule evaluated, no prefilter: the reference the prefilter is tested against.
    pub fn evaluate_all(&self, ev: &Event) -> Vec<RuleHit> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                rule_matches(r, ev).map(|selections| RuleHit {
                    meta: self.meta_of[i],
                    rule: i,
                    selections,
                })
            })
            .collect()
    }

    /// The fields (and their values) that satisfied the hit's selections. Computed only for
    /// alerts that are emitted, not for throttled matches.
    pub fn matched_fields(&self, hit: &RuleHit, ev: &Event) -> Vec<MatchedField> {
        let mut out = Vec::new();
        let Some(rule) = self.rules.get(hit.rule) else {
            return out;
        };
        for name in &hit.selections {
            if let Some(det) = rule.detections.get(name) {
                collect_fields(det, ev, &mut out);
            }
        }
        out
    }
}

/// Whether the rule matches, with the names of the selections that matched. rsigma's
/// `evaluate_rule` decides with a boolean pass that stops as soon as it can, and names the
/// selections only for the few candidates that match (6 % in the bench); its detail pass
/// alone (`eval_condition`) cost 3 % more replay instructions, as it clones every true
/// selection's name and evaluates all of `1 of sel_*`. The names are sorted: rsigma visits
/// `1 of sel_*` in its hash map's order, which differs from run to run, and replaying the
/// same file must write the same alerts.
fn rule_matches(rule: &CompiledRule, ev: &Event) -> Option<Vec<String>> {
    let r = rsigma_eval::evaluate_rule(rule, ev)?;
    let ResultBody::Detection(d) = r.body else {
        return None;
    };
    let mut selections = d.matched_selections;
    selections.sort_unstable();
    Some(selections)
}

/// The same answer as [`rule_matches`] from rsigma's naming pass alone: cheaper than
/// `evaluate_rule` for a rule that matches (one pass instead of two, no result header), dearer
/// for one that does not (it cannot stop early).
fn named_matches(rule: &CompiledRule, ev: &Event) -> Option<Vec<String>> {
    rule.conditions.iter().find_map(|condition| {
        let mut selections = Vec::new();
        rsigma_eval::compiler::eval_condition(condition, &rule.detections, ev, &mut selections)
            .then(|| {
                selections.sort_unstable();
                selections
            })
    })
}

/// The field items of a matched selection that match the event, as rsigma reports them at
/// its `Off` detail level (field and value).
fn collect_fields(det: &CompiledDetection, ev: &Event, out: &mut Vec<MatchedField>) {
    match det {
        CompiledDetection::AllOf(items) => {
            for item in items {
                let Some(field) = &item.field else { continue };
                if let Some(value) = ev.get_field(field) {
                    if item.matcher.matches(&value, ev) {
                        out.push(MatchedField {
                            field: field.clone(),
                            value: value.to_json(),
                        });
                    }
                }
            }
        }
        CompiledDetection::AnyOf(subs) | CompiledDetection::And(subs) => {
            for d in subs {
                collect_fields(d, ev, out);
            }
        }
        CompiledDetection::Keywords(_)
        | CompiledDetection::ArrayMatch { .. }
        | CompiledDetection::Conditional { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::prefilter::anchor::tests::rule;
    use super::*;
    use crate::event::EventKind;

    fn event(image: &str, cmd: &str) -> Event {
        let mut ev = Event::new(EventKind::ProcessCreation);
        ev.push_str("Image", image);
        ev.push_str("CommandLine", cmd);
        ev
    }

    /// A rule that matched last time is evaluated by the naming pass alone: the answers (and
    /// selection names) must stay those of evaluating every rule, as matches come and go.
    #[test]
    fn rules_that_matched_last_time_give_the_same_answers() {
        let rules = [
            rule("  sel_a:\n    CommandLine|contains: 'curl'\n  sel_b:\n    Image|endswith: '/sh'\n  condition: 1 of sel_*"),
            rule("  f:\n    Image|startswith: '/usr/'\n  condition: not f"),
        ];
        let prepared = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i, PreparedRule::new(r)))
            .collect();
        let mut set = RuleSet::build(prepared);
        let events = [
            event("/bin/sh", "curl x | sh"),
            event("/bin/sh", "curl x | sh"),
            event("/usr/bin/ls", "ls"),
            event("/bin/sh", "ls"),
            event("/usr/bin/curl", "curl y"),
            event("/usr/bin/ls", "ls"),
        ];
        let mut hits = Vec::new();
        for ev in &events {
            set.evaluate(ev, &mut hits);
            assert_eq!(hits, set.evaluate_all(ev), "{ev:?}");
        }
    }
}
