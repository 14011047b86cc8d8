//! What a regex says about the values it matches, for the prefilter: the literals every match
//! contains (regex-syntax's extractor, also on inner parts) and its shortest match length.
use super::{best, dedup, union, Anchor, Atom, Clause, Pos, Test};

/// Literals one of which every match of the regex contains: the match is a substring of the
/// value, so the value contains it too. Parsed in ASCII mode (`(?i)` folds ASCII only), which
/// is exact for ASCII values; non-ASCII values are handled by `Atom::from_regex`.
pub(super) fn regex_anchor(field: &str, pattern: &str) -> Option<Anchor> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    // Byte mode counts each character class as one byte, never more than a Unicode match of
    // it on ASCII text; shorter bounds than `MIN_LEN_ATOM` would hit nearly every value.
    let min_len = hir
        .properties()
        .minimum_len()
        .filter(|&n| n >= MIN_LEN_ATOM)
        .map(|n| {
            vec![vec![Atom {
                field: field.to_owned(),
                test: Test::MinLen(n),
                from_regex: true,
            }]]
        });
    best([required_literals(field, &hir, 0), min_len].into_iter())
}

/// Shortest regex match length worth an atom.
const MIN_LEN_ATOM: usize = 16;

/// The best of: the literals every match starts with, those it ends with, and — a match of a
/// concatenation contains a match of each part — the same for every part, recursively.
fn required_literals(field: &str, hir: &regex_syntax::hir::Hir, depth: u32) -> Option<Anchor> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::HirKind;
    let mut options: Vec<Option<Anchor>> = [ExtractKind::Prefix, ExtractKind::Suffix]
        .into_iter()
        .map(|kind| literal_anchor(field, &Extractor::new().kind(kind).extract(hir)))
        .collect();
    if depth < 8 {
        match hir.kind() {
            HirKind::Concat(parts) => {
                options.extend(parts.iter().map(|p| required_literals(field, p, depth + 1)));
            }
            HirKind::Capture(c) => options.push(required_literals(field, &c.sub, depth + 1)),
            HirKind::Repetition(r) if r.min >= 1 => {
                options.push(required_literals(field, &r.sub, depth + 1));
            }
            HirKind::Alternation(alts) => options.push(union(
                alts.iter().map(|a| required_literals(field, a, depth + 1)),
            )),
            _ => {}
        }
    }
    best(options.into_iter())
}

fn literal_anchor(field: &str, seq: &regex_syntax::hir::literal::Seq) -> Option<Anchor> {
    let lits = seq.literals()?;
    if lits.is_empty() {
        return None;
    }
    let mut clause = Clause::new();
    for lit in lits {
        let needle = std::str::from_utf8(lit.as_bytes()).ok()?;
        // ASCII is folded by the scan; other characters only when case cannot matter.
        let caseless = |c: char| c.is_ascii() || (c.is_lowercase() == c.is_uppercase());
        if needle.is_empty() || !needle.chars().all(caseless) {
            return None;
        }
        clause.push(Atom {
            field: field.to_owned(),
            test: Test::Substr(needle.to_ascii_lowercase(), Pos::Anywhere),
            from_regex: true,
        });
    }
    Some(vec![dedup(clause)])
}
