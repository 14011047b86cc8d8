//! The compiled rules of one event kind and their prefilter: evaluates an event against only
//! the rules that can match it (see `prefilter`), each exactly with rsigma.
use rsigma_eval::compiler::eval_condition;
use rsigma_eval::{CompiledDetection, CompiledRule, Event as _};
use rsigma_parser::SigmaRule;

use super::alert::MatchedField;
use super::prefilter::{Prefilter, Verdict};
use crate::event::Event;

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
}

impl RuleSet {
    /// Compiles `(meta index, rule)` pairs on up to `threads` threads. Returns the set and, per
    /// rule that does not compile, its position in `rules` and the reason.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = (usize, &'a SigmaRule)>,
        threads: usize,
    ) -> (RuleSet, Vec<(usize, String)>) {
        let (metas, rules): (Vec<usize>, Vec<&SigmaRule>) = rules.into_iter().unzip();
        let mut compiled = Vec::new();
        let mut meta_of = Vec::new();
        let mut errors = Vec::new();
        for (pos, (meta, result)) in metas
            .into_iter()
            .zip(compile_all(&rules, threads))
            .enumerate()
        {
            match result {
                Ok(c) => {
                    compiled.push(c);
                    meta_of.push(meta);
                }
                Err(e) => errors.push((pos, e)),
            }
        }
        let prefilter = Prefilter::build(&compiled);
        tracing::debug!(
            rules = compiled.len(),
            unanchored = prefilter.unanchored(),
            inverse = prefilter.inverse(),
            "rule set compiled"
        );
        (
            RuleSet {
                rules: compiled,
                meta_of,
                prefilter,
            },
            errors,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules `ev` matches, in rule order. Only the prefilter's candidates are evaluated.
    pub fn evaluate(&mut self, ev: &Event) -> Vec<RuleHit> {
        let mut out = Vec::new();
        let rules = &self.rules;
        let meta_of = &self.meta_of;
        self.prefilter.candidates(ev, |i, verdict| {
            let matched = match verdict {
                Verdict::Matches => Some(Vec::new()),
                Verdict::Evaluate => rule_matches(&rules[i], ev),
            };
            if let Some(selections) = matched {
                out.push(RuleHit {
                    meta: meta_of[i],
                    rule: i,
                    selections,
                });
            }
        });
        out
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

/// Compiles `rules` in order, on up to `max_threads` threads: the rules are independent, and
/// compiling (rsigma builds a regex per wildcard string) is most of loading — a tenth of a
/// replay. Small sets compile on the calling thread.
fn compile_all(rules: &[&SigmaRule], max_threads: usize) -> Vec<Result<CompiledRule, String>> {
    const MIN_PER_THREAD: usize = 16;
    let compile = |r: &&SigmaRule| rsigma_eval::compile_rule(r).map_err(|e| e.to_string());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(max_threads)
        .min(rules.len() / MIN_PER_THREAD);
    if threads < 2 {
        return rules.iter().map(compile).collect();
    }
    // Contiguous chunks, joined in order: the results line up with `rules`.
    let chunk = rules.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = rules
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(compile).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            // A panic in a worker is a panic of this thread, as when compiling here.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// One evaluation pass (rsigma's `evaluate_rule` runs a boolean pass and then a detail pass
/// and clones the rule header per match): the condition with the names of the selections
/// that matched. Several conditions are alternatives.
fn rule_matches(rule: &CompiledRule, ev: &Event) -> Option<Vec<String>> {
    for cond in &rule.conditions {
        let mut selections = Vec::new();
        if eval_condition(cond, &rule.detections, ev, &mut selections) {
            return Some(selections);
        }
    }
    None
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
