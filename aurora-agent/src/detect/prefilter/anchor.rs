//! Rule analysis for the prefilter: which cheap facts about an event can decide a rule.
//!
//! A *clause* is a set of atoms at least one of which *hits* the event whenever the detection
//! is true; an *anchor* is a short conjunction of clauses, each of which must have a hit. It
//! over-approximates: `and` keeps the most selective clauses of its operands (a candidate
//! needs a hit in each), `or` builds clauses that take one clause from every operand, a regex
//! contributes the literals all its matches start or end with (regex-syntax's extractor) and
//! its shortest match length, an integral value its number, and anything we cannot bound
//! (`not`, number ranges, `|exists: true`, short literal-free regexes) leaves that
//! branch unbounded (`None`).
//!
//! Each rule is then classified:
//! - `Anchored`: the condition is false when every detection is false, and the rule has an
//!   anchor: some clause without a hit ⇒ the rule does not match (skip it).
//! - `Inverse`: the condition is *true* when every detection is false (`not filter`-only rules,
//!   e.g. "image has no Windows path"), and every referenced detection has an anchor: no hit in
//!   the union of their best clauses ⇒ every detection is false ⇒ the rule matches, with no
//!   matched selection, without evaluating.
//! - `Always`: evaluated on every event.
use rsigma_eval::matcher::GroupMode;
use rsigma_eval::{CompiledDetection, CompiledMatcher, CompiledRule};
use rsigma_parser::{ConditionExpr, Quantifier};

mod regex;
use regex::regex_anchor;

/// Where a needle must occur in the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pos {
    Anywhere,
    Start,
    End,
    /// The whole value (Sigma's plain `Field: value`).
    Whole,
}

/// What must be true of a field for an atom to hit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Test {
    /// The value contains the (lowered) needle at `Pos`, ASCII case folded.
    Substr(String, Pos),
    /// The field is absent (or null): Sigma's `Field: null` and `|exists: false`.
    Absent,
    /// The value is the empty string: Sigma's `Field: ''`.
    Empty,
    /// The value is at least this many bytes long: a regex no shorter text can match (SigmaHQ's
    /// long-filename rule is `[^/]{100,}$`, with no literal at all). Always `from_regex`: on a
    /// non-ASCII value, whose lowered form may be shorter, it counts as hit.
    MinLen(usize),
    /// The value is this integer as a number: Sigma's `DestinationPort: 4444`, which rsigma
    /// compares numerically (so `"4444.0"` matches too).
    NumEq(i64),
}

/// One atom of an anchor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Atom {
    pub field: String,
    pub test: Test,
    /// Derived from a regex, whose literals are only exact for ASCII values: on a non-ASCII
    /// value the atom counts as hit.
    pub from_regex: bool,
}

/// At least one of these atoms hits whenever the detection (or rule) is true.
pub type Clause = Vec<Atom>;

/// Every one of these clauses has a hit whenever the detection (or rule) is true; never empty,
/// most selective clause first, at most `MAX_CLAUSES`.
pub type Anchor = Vec<Clause>;

/// Clauses kept per anchor: the first decides most events; the next few catch the common
/// `Image|endswith: /sh` AND `CommandLine|contains: ...` shape, where either side alone hits
/// often. Each costs a bit per rule and event, so a few suffice.
const MAX_CLAUSES: usize = 3;

/// Least `selectivity` of a clause after the first: a needle of under four bytes (`-R`, ` `)
/// or a missing field hits most events, so such a clause rarely spares an evaluation but costs
/// automaton matches on every event (all further clauses on the SigmaHQ + scale rules: 11
/// matches per event instead of 3, and the scaled detector no faster).
const MIN_FURTHER_SELECTIVITY: usize = 4;

/// The same floor for auditd rules (`service: auditd`): their weak needles (`/.`, `dd`, `if=`)
/// sit on fields only audit records have (`name`, `aN`) or on keywords, so keeping them costs
/// little and spares evaluating rules like "hidden paths" on every PATH record (the records
/// made from every exec: 30 % of their cost; on the other routes it cost 1.2 %).
const MIN_FURTHER_SELECTIVITY_AUDITD: usize = 2;

thread_local! {
    /// The floor in force while one rule is classified (set by `classify`).
    static FURTHER_FLOOR: std::cell::Cell<usize> = const { std::cell::Cell::new(MIN_FURTHER_SELECTIVITY) };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    Anchored(Anchor),
    /// One clause: the union of each referenced detection's best clause.
    Inverse(Clause),
    Always,
}

pub fn classify(rule: &CompiledRule) -> Class {
    let auditd = rule
        .logsource
        .service
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("auditd"));
    let floor = if auditd {
        MIN_FURTHER_SELECTIVITY_AUDITD
    } else {
        MIN_FURTHER_SELECTIVITY
    };
    let previous = FURTHER_FLOOR.with(|f| f.replace(floor));
    let class = classify_rule(rule);
    FURTHER_FLOOR.with(|f| f.set(previous));
    class
}

fn classify_rule(rule: &CompiledRule) -> Class {
    if rule.conditions.iter().any(|c| true_when_all_false(c, rule)) {
        // Every detection the conditions read must be bounded.
        let mut all = Clause::new();
        for (name, det) in &rule.detections {
            if !rule.conditions.iter().any(|c| references(c, name)) {
                continue;
            }
            match detection_anchor(det) {
                Some(mut a) => all.append(&mut a[0]),
                None => return Class::Always,
            }
        }
        let all = dedup(all);
        return if all.is_empty() {
            Class::Always
        } else {
            Class::Inverse(all)
        };
    }
    match rule_anchor(rule) {
        Some(a) => Class::Anchored(a),
        None => Class::Always,
    }
}

/// The anchor of a whole rule, or `None` when the rule is not bounded by any atom.
pub fn rule_anchor(rule: &CompiledRule) -> Option<Anchor> {
    // Several conditions are alternatives: the rule fires when any one does.
    union(rule.conditions.iter().map(|c| condition_anchor(c, rule)))
}

/// The condition's value when every detection is false.
fn true_when_all_false(cond: &ConditionExpr, rule: &CompiledRule) -> bool {
    match cond {
        ConditionExpr::Identifier(_) => false,
        ConditionExpr::And(items) => items.iter().all(|c| true_when_all_false(c, rule)),
        ConditionExpr::Or(items) => items.iter().any(|c| true_when_all_false(c, rule)),
        ConditionExpr::Not(inner) => !true_when_all_false(inner, rule),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => match quantifier {
            Quantifier::Any => false,
            // `all of` an empty set is true; of a non-empty set of false detections, false.
            Quantifier::All => !rule
                .detections
                .keys()
                .any(|n| pattern.matches_detection_name(n)),
            Quantifier::Count(n) => *n == 0,
        },
    }
}

fn references(cond: &ConditionExpr, name: &str) -> bool {
    match cond {
        ConditionExpr::Identifier(id) => id == name,
        ConditionExpr::And(items) | ConditionExpr::Or(items) => {
            items.iter().any(|c| references(c, name))
        }
        ConditionExpr::Not(inner) => references(inner, name),
        ConditionExpr::Selector { pattern, .. } => pattern.matches_detection_name(name),
    }
}

fn condition_anchor(cond: &ConditionExpr, rule: &CompiledRule) -> Option<Anchor> {
    match cond {
        ConditionExpr::Identifier(name) => detection_anchor(rule.detections.get(name)?),
        ConditionExpr::And(items) => best(items.iter().map(|c| condition_anchor(c, rule))),
        ConditionExpr::Or(items) => union(items.iter().map(|c| condition_anchor(c, rule))),
        ConditionExpr::Not(_) => None,
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            // By name: the detections are a HashMap, and ties in `best` must not depend on
            // its iteration order (the chosen anchor, and so the speed, would vary per run).
            let mut matching: Vec<_> = rule
                .detections
                .iter()
                .filter(|(name, _)| pattern.matches_detection_name(name))
                .collect();
            matching.sort_by(|a, b| a.0.cmp(b.0));
            let matching = matching.into_iter().map(|(_, d)| detection_anchor(d));
            match quantifier {
                Quantifier::All => best(matching),
                Quantifier::Any => union(matching),
                Quantifier::Count(0) => None,
                Quantifier::Count(_) => union(matching),
            }
        }
    }
}

/// The pseudo-field of keywords: a keyword hits when any string value of the event (or its
/// log line, for the kinds that have one) contains it. No event has a field of this name.
pub const ANY_VALUE: &str = "\u{1}any value";

/// A keyword matcher's anchor on `ANY_VALUE`: its needles, wherever they are in a value
/// (positions and other tests are not kept: unbounded then).
fn keyword_anchor(m: &CompiledMatcher) -> Option<Anchor> {
    let mut anchor = matcher_anchor(ANY_VALUE, m)?;
    for atom in anchor.iter_mut().flatten() {
        match &mut atom.test {
            Test::Substr(_, pos) if !atom.from_regex => *pos = Pos::Anywhere,
            _ => return None,
        }
    }
    Some(anchor)
}

pub fn detection_anchor(det: &CompiledDetection) -> Option<Anchor> {
    match det {
        CompiledDetection::AllOf(items) => best(items.iter().map(|item| {
            let Some(field) = item.field.as_deref() else {
                return keyword_anchor(&item.matcher);
            };
            match item.exists {
                Some(false) => return atom(field, Test::Absent),
                Some(true) => return None,
                None => {}
            }
            // An absent field satisfies the item only through a top-level `null` matcher.
            if matches!(item.matcher, CompiledMatcher::Null) {
                return atom(field, Test::Absent);
            }
            matcher_anchor(field, &item.matcher)
        })),
        CompiledDetection::AnyOf(subs) => union(subs.iter().map(detection_anchor)),
        CompiledDetection::And(subs) => best(subs.iter().map(detection_anchor)),
        CompiledDetection::Keywords(m) => keyword_anchor(m),
        CompiledDetection::ArrayMatch { .. } | CompiledDetection::Conditional { .. } => None,
    }
}

/// Anchor of a matcher applied to a present field.
fn matcher_anchor(field: &str, m: &CompiledMatcher) -> Option<Anchor> {
    match m {
        CompiledMatcher::Exact { value, .. } if value.is_empty() => atom(field, Test::Empty),
        CompiledMatcher::Exact {
            value,
            case_insensitive,
        } => substr(field, value, Pos::Whole, *case_insensitive),
        CompiledMatcher::Contains {
            value,
            case_insensitive,
        } => substr(field, value, Pos::Anywhere, *case_insensitive),
        CompiledMatcher::StartsWith {
            value,
            case_insensitive,
        } => substr(field, value, Pos::Start, *case_insensitive),
        CompiledMatcher::EndsWith {
            value,
            case_insensitive,
        } => substr(field, value, Pos::End, *case_insensitive),
        CompiledMatcher::AhoCorasickSet {
            needles,
            case_insensitive,
            ..
        } => union(
            needles
                .iter()
                .map(|n| substr(field, n, Pos::Anywhere, *case_insensitive)),
        ),
        CompiledMatcher::AnyOf(children) => {
            union(children.iter().map(|c| matcher_anchor(field, c)))
        }
        CompiledMatcher::AllOf(children) => best(children.iter().map(|c| matcher_anchor(field, c))),
        CompiledMatcher::CaseInsensitiveGroup { children, mode } => {
            group(mode, children.iter().map(|c| matcher_anchor(field, c)))
        }
        CompiledMatcher::Regex(re) => regex_anchor(field, re.as_str()),
        CompiledMatcher::RegexSetMatch { set, mode } => {
            group(mode, set.patterns().iter().map(|p| regex_anchor(field, p)))
        }
        // A null value reads as absent to the prefilter.
        CompiledMatcher::Null => atom(field, Test::Absent),
        // Integral and exact as f64 (the prefilter rounds the event's number to compare).
        CompiledMatcher::NumericEq(n) if n.fract() == 0.0 && n.abs() < MAX_EXACT_INT => {
            atom(field, Test::NumEq(*n as i64))
        }
        _ => None,
    }
}

fn atom(field: &str, test: Test) -> Option<Anchor> {
    Some(vec![vec![Atom {
        field: field.to_owned(),
        test,
        from_regex: false,
    }]])
}

fn substr(field: &str, needle: &str, pos: Pos, case_insensitive: bool) -> Option<Anchor> {
    if needle.is_empty() {
        return None; // contained in everything
    }
    // A `|cased` needle is compared with the value as written, but we compare lowered text;
    // for ASCII that only widens the test, while Unicode lowering is context dependent (final
    // sigma), so non-ASCII cased needles stay unbounded.
    if !case_insensitive && !needle.is_ascii() {
        return None;
    }
    // Lowered the way rsigma lowers case-insensitive values (it stores them lowered already).
    atom(field, Test::Substr(needle.to_lowercase(), pos))
}

/// Integers up to this are exact as f64, with room for rounding the event's value.
const MAX_EXACT_INT: f64 = (1u64 << 52) as f64;

fn group(mode: &GroupMode, each: impl Iterator<Item = Option<Anchor>>) -> Option<Anchor> {
    match mode {
        GroupMode::Any => union(each),
        GroupMode::All => best(each),
    }
}

/// OR: every operand must be bounded. A clause of the result takes one clause from every
/// operand (their union hits whenever any operand is true): the operands' best clauses, and per
/// field, each operand's best clause on that field (so `1 of selection_*` over several
/// `Image AND CommandLine` selections keeps both an Image and a CommandLine clause).
fn union(items: impl Iterator<Item = Option<Anchor>>) -> Option<Anchor> {
    let operands: Vec<Anchor> = items.collect::<Option<_>>()?;
    // An OR of nothing never matches; treating it as unbounded keeps the code obviously safe.
    if operands.is_empty() {
        return None;
    }
    if operands.len() == 1 {
        return operands.into_iter().next();
    }
    let mut fields: Vec<&str> = operands
        .iter()
        .flatten()
        .filter_map(|c| single_field(c))
        .collect();
    fields.sort_unstable();
    fields.dedup();
    let pick = |field: Option<&str>| -> Clause {
        let mut out = Clause::new();
        for a in &operands {
            let on_field = field.and_then(|f| a.iter().find(|c| single_field(c) == Some(f)));
            out.extend(on_field.unwrap_or(&a[0]).iter().cloned());
        }
        dedup(out)
    };
    let mut clauses: Vec<Clause> = std::iter::once(None)
        .chain(fields.iter().map(|f| Some(*f)))
        .map(pick)
        .collect();
    Some(conjoin(&mut clauses))
}

/// The one field all of the clause's atoms test, if there is one.
fn single_field(c: &Clause) -> Option<&str> {
    let first = c.first()?.field.as_str();
    c.iter().all(|a| a.field == first).then_some(first)
}

/// AND: any bounded operand bounds the whole; keep the most selective clauses of all of them.
fn best(items: impl Iterator<Item = Option<Anchor>>) -> Option<Anchor> {
    let mut clauses: Vec<Clause> = items.flatten().flatten().collect();
    if clauses.is_empty() {
        return None;
    }
    Some(conjoin(&mut clauses))
}

/// The conjunction of `clauses` as an anchor: a clause that contains another is implied by it
/// and dropped, the rest ordered most selective first and cut to `MAX_CLAUSES`.
fn conjoin(clauses: &mut Vec<Clause>) -> Anchor {
    clauses.sort_by_key(|c| std::cmp::Reverse(selectivity(c)));
    let mut out: Anchor = Vec::new();
    for c in clauses.drain(..) {
        let weak = selectivity(&c).0 < FURTHER_FLOOR.with(|f| f.get());
        if out.len() == MAX_CLAUSES || (!out.is_empty() && weak) {
            break;
        }
        // Kept clauses are at least as selective; one contained in `c` makes `c` redundant.
        if !out.iter().any(|kept| contains_all(&c, kept)) {
            out.push(c);
        }
    }
    out
}

/// Whether every atom of `inner` (sorted, as `dedup` leaves clauses) is in `outer` (sorted).
fn contains_all(outer: &Clause, inner: &Clause) -> bool {
    inner.len() <= outer.len()
        && inner.iter().all(|a| {
            outer
                .binary_search_by(|o| o.field.cmp(&a.field).then(o.test.cmp(&a.test)))
                .is_ok()
        })
}

/// Higher is rarer: the weakest atom decides how often the clause hits; fewer atoms win ties.
/// A needle counts its length, more when its position is fixed; an absent field is weak (many
/// Windows fields never exist here), an empty value rarer.
fn selectivity(a: &Clause) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = a
        .iter()
        .map(|x| match &x.test {
            Test::Substr(n, Pos::Anywhere) => n.len(),
            Test::Substr(n, Pos::Start | Pos::End) => n.len() + 2,
            Test::Substr(n, Pos::Whole) => n.len() + 4,
            Test::Absent => 1,
            Test::Empty => 6,
            // Most values are under 64 bytes; a 100-byte minimum is rare.
            Test::MinLen(n) => n / 8,
            // As the digits written as a whole value.
            Test::NumEq(n) => n.to_string().len() + 4,
        })
        .min()
        .unwrap_or(0);
    (shortest.min(16), std::cmp::Reverse(a.len()))
}

/// Sorted by field and test, one atom per (field, test).
fn dedup(mut a: Clause) -> Clause {
    a.sort_unstable_by(|x, y| x.field.cmp(&y.field).then(x.test.cmp(&y.test)));
    // Same test from a plain and a regex matcher: keep one atom, flagged if either was.
    a.dedup_by(|later, kept| {
        let same = later.field == kept.field && later.test == kept.test;
        if same {
            kept.from_regex |= later.from_regex;
        }
        same
    });
    a
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rule(detection: &str) -> CompiledRule {
        let yaml = format!(
            "title: t\nlogsource: {{category: process_creation, product: linux}}\n\
             detection:\n{detection}\nlevel: high\n"
        );
        let parsed = rsigma_parser::parse_sigma_yaml(&yaml)
            .expect("parses")
            .rules
            .remove(0);
        rsigma_eval::compile_rule(&parsed).expect("compiles")
    }

    fn needles(a: &Clause) -> Vec<(&str, &str)> {
        a.iter()
            .map(|x| match &x.test {
                Test::Substr(n, _) => (x.field.as_str(), n.as_str()),
                Test::Absent => (x.field.as_str(), "<absent>"),
                Test::Empty => (x.field.as_str(), "<empty>"),
                Test::MinLen(_) => (x.field.as_str(), "<long>"),
                Test::NumEq(_) => (x.field.as_str(), "<number>"),
            })
            .collect()
    }

    fn clauses(a: &Anchor) -> Vec<Vec<(&str, &str)>> {
        a.iter().map(needles).collect()
    }

    #[test]
    fn and_keeps_both_sides_most_selective_first_and_not_is_unbounded() {
        let r = rule(
            "  sel:\n    Image|endswith: '/curl'\n    CommandLine|contains: ' --upload-file '\n\
             \x20 filter:\n    User: root\n  condition: sel and not filter",
        );
        let Class::Anchored(a) = classify(&r) else {
            panic!("anchored")
        };
        assert_eq!(
            clauses(&a),
            vec![
                vec![("CommandLine", " --upload-file ")],
                vec![("Image", "/curl")]
            ]
        );
        // At most MAX_CLAUSES, the weakest dropped ("curl ", " -c "); the `/sh or /bash` clause
        // is implied by `/bash` and dropped.
        let r = rule(
            "  sel:\n    Image|endswith: ['/sh', '/bash']\n    User: root\n\
             \x20   CommandLine|contains|all: [' -c ', '/tmp/', 'curl ']\n\
             \x20 img:\n    Image|endswith: '/bash'\n  condition: sel and img",
        );
        assert_eq!(
            clauses(&rule_anchor(&r).unwrap()),
            vec![
                vec![("User", "root")],
                vec![("Image", "/bash")],
                vec![("CommandLine", "/tmp/")]
            ]
        );
    }

    #[test]
    fn or_unions_and_any_unbounded_branch_unanchors() {
        let r = rule(
            "  a:\n    Image|endswith: '/wget'\n  b:\n    CommandLine|contains: 'XyZ'\n\
             \x20 condition: 1 of a or b",
        );
        let a = rule_anchor(&r).expect("anchored");
        assert_eq!(
            clauses(&a),
            vec![vec![("CommandLine", "xyz"), ("Image", "/wget")]]
        );
        let r = rule(
            "  a:\n    Image|endswith: '/wget'\n  b:\n    CommandLine|re: '[a-z]+x?'\n\
             \x20 condition: a or b",
        );
        assert_eq!(classify(&r), Class::Always);
    }

    #[test]
    fn regex_literals_anchor_with_the_better_of_prefix_and_suffix() {
        let r = rule("  s:\n    CommandLine|re: 'ipconfig\\s+/all'\n  condition: s");
        // `\s` is expanded: six needles "ipconfig" + one whitespace byte.
        let a = &rule_anchor(&r).unwrap()[0];
        assert_eq!(a.len(), 6);
        assert!(a.iter().all(|x| x.from_regex
            && matches!(&x.test, Test::Substr(n, Pos::Anywhere) if n.starts_with("ipconfig"))));
        // `(?i)` multiplies case variants until the extractor trims them to a shorter suffix.
        let r = rule("  s:\n    CommandLine|re: '(?i).*\\s+-EncodedCommand'\n  condition: s");
        let a = &rule_anchor(&r).unwrap()[0];
        assert!(a.iter().all(|x| matches!(&x.test,
            Test::Substr(n, _) if n.len() >= 4 && "-encodedcommand".ends_with(n.as_str()))));
        let r = rule("  s:\n    CommandLine|re: '\\w+\\d*'\n  condition: s");
        assert_eq!(rule_anchor(&r), None);
        // No literal, but no match is shorter than 100 bytes.
        let r = rule("  s:\n    TargetFilename|re: '[^/]{100,}$'\n  condition: s");
        let a = rule_anchor(&r).unwrap();
        assert_eq!(a[0][0].test, Test::MinLen(100));
        assert!(a[0][0].from_regex);
        // Neither prefix nor suffix is finite, but every match contains the backtick.
        let r = rule("  s:\n    CommandLine|re: '\\w+`(?:\\w+|-|.)`[\\w+|\\s]'\n  condition: s");
        assert_eq!(
            clauses(&rule_anchor(&r).unwrap()),
            vec![vec![("CommandLine", "`")]]
        );
    }

    #[test]
    fn negation_only_rules_are_inverse_when_every_filter_is_bounded() {
        let r = rule(
            "  filter_main:\n    Image|contains: '\\'\n  filter_null:\n    Image: null\n\
             \x20 filter_empty:\n    Image:\n      - '-'\n      - ''\n\
             \x20 condition: not 1 of filter_*",
        );
        let Class::Inverse(a) = classify(&r) else {
            panic!("inverse: {:?}", classify(&r))
        };
        assert_eq!(
            needles(&a),
            vec![
                ("Image", "-"),
                ("Image", "\\"),
                ("Image", "<absent>"),
                ("Image", "<empty>")
            ]
        );
        // A filter the prefilter cannot bound makes the rule evaluated every time.
        let r = rule(
            "  filter_a:\n    Image|contains: 'x'\n  filter_b:\n    ProcessId|gt: 5\n\
             \x20 condition: not 1 of filter_*",
        );
        assert_eq!(classify(&r), Class::Always);
    }

    #[test]
    fn all_false_value_follows_sigma_semantics() {
        let r = rule("  a:\n    Image: x\n  condition: all of b*");
        assert!(true_when_all_false(&r.conditions[0], &r));
        let r = rule("  a:\n    Image: x\n  condition: all of a*");
        assert!(!true_when_all_false(&r.conditions[0], &r));
        let r = rule("  a:\n    Image: x\n  b:\n    Image: y\n  condition: a or not b");
        assert!(true_when_all_false(&r.conditions[0], &r));
    }
}
