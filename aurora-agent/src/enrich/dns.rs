//! DNS correlation: the answers processes received (from the kernel's DNS ring) become an
//! IP → name cache, and outbound connections get `DestinationHostname` from it — the name the
//! process asked for (the question), after following the answer's CNAME chain to the address.
//!
//! Two bounded LRU caches: per process (the answer that process itself received wins) and
//! global (another process resolved it, e.g. a local stub resolver). An entry lives for
//! max(record TTL, FLOOR) capped at CAP: short TTLs are common and a connect often follows the
//! answer by more than them.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use simple_dns::rdata::RData;
use simple_dns::{Packet, PacketFlag};

use crate::stats::EnrichStats;

/// Shortest time an answer is kept, whatever its TTL.
pub const FLOOR: Duration = Duration::from_secs(300);
/// Longest time an answer is kept.
pub const CAP: Duration = Duration::from_secs(3600);
/// Entries per cache.
pub const CAPACITY: usize = 4096;
/// CNAME links followed from the question before giving up (loops, hostile packets).
const MAX_CHAIN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AnswerError {
    #[error("not a DNS message: {0}")]
    Parse(String),
    #[error("a query, not an answer")]
    NotResponse,
    #[error("no question")]
    NoQuestion,
}

/// (address, the name asked for, TTL) for every A/AAAA record the question leads to.
pub fn parse_answer(payload: &[u8]) -> Result<Vec<(IpAddr, String, u32)>, AnswerError> {
    let packet = Packet::parse(payload).map_err(|e| AnswerError::Parse(e.to_string()))?;
    if !packet.has_flags(PacketFlag::RESPONSE) {
        return Err(AnswerError::NotResponse);
    }
    let question = packet.questions.first().ok_or(AnswerError::NoQuestion)?;
    let asked = normalize(&question.qname.to_string());
    // Names the question reaches through CNAMEs (the question itself first).
    let mut reached = vec![asked.clone()];
    for _ in 0..MAX_CHAIN {
        let last = reached.last().cloned().unwrap_or_default();
        let next = packet.answers.iter().find_map(|rr| match &rr.rdata {
            RData::CNAME(c) if normalize(&rr.name.to_string()) == last => {
                Some(normalize(&c.0.to_string()))
            }
            _ => None,
        });
        match next {
            Some(n) if !reached.contains(&n) => reached.push(n),
            _ => break,
        }
    }
    let mut out = Vec::new();
    for rr in &packet.answers {
        let ip = match &rr.rdata {
            RData::A(a) => IpAddr::V4(Ipv4Addr::from(a.address)),
            RData::AAAA(a) => IpAddr::V6(Ipv6Addr::from(a.address)),
            _ => continue,
        };
        if reached.contains(&normalize(&rr.name.to_string())) {
            out.push((ip, asked.clone(), rr.ttl));
        }
    }
    Ok(out)
}

/// Lower case, no trailing dot: how DestinationHostname is written and compared.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[derive(Clone)]
struct Entry {
    name: Arc<str>,
    expires: Instant,
}

/// A process as the kernel names it: (tgid, start time), stable across PID reuse.
pub type ProcessKey = (u32, u64);

pub struct DnsCache {
    per_process: LruCache<(ProcessKey, IpAddr), Entry>,
    global: LruCache<IpAddr, Entry>,
    stats: Arc<EnrichStats>,
}

impl DnsCache {
    pub fn new(capacity: usize, stats: Arc<EnrichStats>) -> Self {
        DnsCache {
            per_process: super::growing_lru(capacity),
            global: super::growing_lru(capacity),
            stats,
        }
    }

    /// Learn from one answer (received by `process`, when known). Malformed payloads are
    /// counted. The same answer may arrive twice (seen on the way in and by its reader).
    pub fn observe(&mut self, process: Option<ProcessKey>, payload: &[u8], now: Instant) {
        let records = match parse_answer(payload) {
            Ok(r) => r,
            Err(e) => {
                self.stats.dns_parse_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("DNS answer not used: {e}");
                return;
            }
        };
        self.stats.dns_answers.fetch_add(1, Ordering::Relaxed);
        for (ip, name, ttl) in records {
            let keep = Duration::from_secs(u64::from(ttl)).clamp(FLOOR, CAP);
            let entry = Entry {
                name: name.into(),
                expires: now + keep,
            };
            let mut n = 0;
            if let Some(p) = process {
                let old = self.per_process.push((p, ip), entry.clone());
                n += u64::from(old.is_some_and(|(k, _)| k != (p, ip)));
            }
            let old = self.global.push(ip, entry);
            n += u64::from(old.is_some_and(|(k, _)| k != ip));
            self.stats
                .dns_cache_evictions
                .fetch_add(n, Ordering::Relaxed);
        }
        self.stats.dns_cache_entries.store(
            (self.per_process.len() + self.global.len()) as u64,
            Ordering::Relaxed,
        );
    }

    /// The name `ip` was resolved from, preferring what `process` itself received.
    pub fn lookup(
        &mut self,
        process: Option<ProcessKey>,
        ip: IpAddr,
        now: Instant,
    ) -> Option<Arc<str>> {
        let own = process.and_then(|p| fresh(self.per_process.get(&(p, ip)), now));
        let found = own.or_else(|| fresh(self.global.get(&ip), now));
        let counter = if found.is_some() {
            &self.stats.dns_connects_resolved
        } else {
            &self.stats.dns_connects_unresolved
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }
}

fn fresh(e: Option<&Entry>, now: Instant) -> Option<Arc<str>> {
    e.filter(|e| e.expires > now).map(|e| e.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::rdata::{A, AAAA, CNAME};
    use simple_dns::{Name, Question, ResourceRecord, CLASS, QCLASS, QTYPE, TYPE};

    fn answer(q: &str, records: Vec<ResourceRecord<'static>>) -> Vec<u8> {
        let mut p = Packet::new_reply(7);
        p.questions.push(Question::new(
            Name::new_unchecked(q),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.answers = records;
        p.build_bytes_vec_compressed().unwrap()
    }

    fn a(name: &'static str, ip: [u8; 4], ttl: u32) -> ResourceRecord<'static> {
        ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            ttl,
            RData::A(A {
                address: u32::from_be_bytes(ip),
            }),
        )
    }

    fn cname(name: &'static str, to: &'static str) -> ResourceRecord<'static> {
        ResourceRecord::new(
            Name::new_unchecked(name),
            CLASS::IN,
            60,
            RData::CNAME(CNAME(Name::new_unchecked(to))),
        )
    }

    #[test]
    fn a_and_aaaa_records_name_their_addresses() {
        let mut recs = vec![a("Host.Example.COM.", [192, 0, 2, 1], 30)];
        recs.push(ResourceRecord::new(
            Name::new_unchecked("host.example.com"),
            CLASS::IN,
            30,
            RData::AAAA(AAAA { address: 1 }),
        ));
        let got = parse_answer(&answer("host.example.com", recs)).unwrap();
        assert_eq!(
            got,
            vec![
                ("192.0.2.1".parse().unwrap(), "host.example.com".into(), 30),
                ("::1".parse().unwrap(), "host.example.com".into(), 30),
            ]
        );
    }

    #[test]
    fn cname_chains_lead_back_to_the_question_and_strays_are_ignored() {
        let recs = vec![
            cname("www.example.com", "edge.cdn.example"),
            cname("edge.cdn.example", "a1.cdn.example"),
            a("a1.cdn.example", [198, 51, 100, 7], 20),
            a("unrelated.example", [203, 0, 113, 9], 20),
        ];
        let got = parse_answer(&answer("www.example.com", recs)).unwrap();
        assert_eq!(
            got,
            vec![(
                "198.51.100.7".parse().unwrap(),
                "www.example.com".into(),
                20
            )]
        );
    }

    #[test]
    fn cname_loops_end() {
        let recs = vec![
            cname("a.example", "b.example"),
            cname("b.example", "a.example"),
        ];
        assert_eq!(parse_answer(&answer("a.example", recs)).unwrap(), vec![]);
    }

    #[test]
    fn queries_truncated_and_hostile_packets_are_errors_not_panics() {
        let mut q = Packet::new_query(1);
        q.questions.push(Question::new(
            Name::new_unchecked("x.example"),
            QTYPE::TYPE(TYPE::A),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        assert_eq!(
            parse_answer(&q.build_bytes_vec().unwrap()),
            Err(AnswerError::NotResponse)
        );
        let good = answer(
            "host.example.com",
            vec![a("host.example.com", [192, 0, 2, 1], 30)],
        );
        for cut in 0..good.len() {
            let _ = parse_answer(&good[..cut]);
        }
        // A compression pointer to itself, and one past the end.
        let mut looped = good.clone();
        looped.extend_from_slice(&[0xc0, (good.len()) as u8]);
        let _ = parse_answer(&looped);
        let mut hostile = vec![0u8; 12];
        hostile[2] = 0x80; // response
        hostile[5] = 1; // one question
        hostile.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        let _ = parse_answer(&hostile);
        let mut rng = 0x9e37_79b9_u32;
        for _ in 0..2000 {
            let mut p = good.clone();
            for _ in 0..4 {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let i = (rng as usize) % p.len();
                p[i] = (rng >> 24) as u8;
            }
            let _ = parse_answer(&p);
        }
    }

    #[test]
    fn cache_prefers_the_process_own_answer_and_honours_ttl_floor_and_cap() {
        let stats = Arc::new(EnrichStats::default());
        let mut c = DnsCache::new(4, stats.clone());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        c.observe(
            Some((10, 1)),
            &answer("mine.example", vec![a("mine.example", [192, 0, 2, 1], 1)]),
            t0,
        );
        c.observe(
            Some((20, 2)),
            &answer("other.example", vec![a("other.example", [192, 0, 2, 1], 1)]),
            t0,
        );
        assert_eq!(
            c.lookup(Some((10, 1)), ip, t0).as_deref(),
            Some("mine.example")
        );
        // Another process gets the latest global answer.
        assert_eq!(
            c.lookup(Some((30, 3)), ip, t0).as_deref(),
            Some("other.example")
        );
        // TTL 1 s is raised to the floor; past the floor, gone.
        assert!(c
            .lookup(None, ip, t0 + FLOOR - Duration::from_secs(1))
            .is_some());
        assert!(c
            .lookup(None, ip, t0 + FLOOR + Duration::from_secs(1))
            .is_none());
        // A day-long TTL is capped.
        c.observe(
            Some((10, 1)),
            &answer(
                "long.example",
                vec![a("long.example", [192, 0, 2, 9], 86400)],
            ),
            t0,
        );
        let ip9: IpAddr = "192.0.2.9".parse().unwrap();
        assert!(c
            .lookup(None, ip9, t0 + CAP + Duration::from_secs(1))
            .is_none());
        assert_eq!(stats.dns_answers.load(Ordering::Relaxed), 3);
        assert!(stats.dns_connects_resolved.load(Ordering::Relaxed) >= 3);
        c.observe(None, b"\x00\x01garbage", t0);
        assert_eq!(stats.dns_parse_errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn cache_is_bounded() {
        let stats = Arc::new(EnrichStats::default());
        let mut c = DnsCache::new(4, stats.clone());
        let t0 = Instant::now();
        for i in 0..10u8 {
            let names = [
                "n0.example",
                "n1.example",
                "n2.example",
                "n3.example",
                "n4.example",
                "n5.example",
                "n6.example",
                "n7.example",
                "n8.example",
                "n9.example",
            ];
            c.observe(
                Some((1, 1)),
                &answer(
                    names[i as usize],
                    vec![a(names[i as usize], [192, 0, 2, i], 60)],
                ),
                t0,
            );
        }
        assert_eq!(stats.dns_cache_entries.load(Ordering::Relaxed), 8);
        assert_eq!(stats.dns_cache_evictions.load(Ordering::Relaxed), 12);
    }
}
