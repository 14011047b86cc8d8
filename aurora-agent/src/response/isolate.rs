//! Host isolation: one nftables table of Aurora's own (`inet aurora_isolation`) that drops
//! all traffic but loopback and flows to and from the allowed addresses (the fleet server, the
//! agent's collectors). Written with Debian's `nft` in JSON mode: the kernel's own tool and
//! format, whose JSON schema is stable and checked by `nft` before anything is committed (one
//! transaction: the table is replaced whole or not at all). The table lives in the kernel, not
//! in the agent: it survives agent restarts and reloads, and only `unisolate` removes it. It
//! touches no other table.
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value as Json};

pub const TABLE: &str = "aurora_isolation";

/// An address let through: a host, optionally one TCP/UDP port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Allow {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl std::fmt::Display for Allow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.addr, self.port) {
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
            (a, Some(p)) => write!(f, "{a}:{p}"),
            (a, None) => write!(f, "{a}"),
        }
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT` or `host:port` (resolved now).
pub fn parse_allow(s: &str) -> Result<Vec<Allow>> {
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(vec![Allow { addr, port: None }]);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(vec![Allow {
            addr: sa.ip(),
            port: Some(sa.port()),
        }]);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .with_context(|| format!("--allow {s}: expected ADDR, ADDR:PORT or HOST:PORT"))?
        .collect();
    Ok(addrs
        .into_iter()
        .map(|a| Allow {
            addr: a.ip(),
            port: Some(a.port()),
        })
        .collect())
}

/// The collectors an agent's outputs name (syslog targets, NATS servers), as allows.
pub fn collectors(targets: &[String]) -> Vec<Allow> {
    targets
        .iter()
        .filter_map(|t| {
            let hostport = t.split("://").last().unwrap_or(t);
            let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
            parse_allow(hostport).ok()
        })
        .flatten()
        .collect()
}

fn payload(proto: &str, field: &str) -> Json {
    json!({"payload": {"protocol": proto, "field": field}})
}

fn matches(left: Json, right: Json) -> Json {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

/// The rules of one direction for one allow: address (and port) on the far side.
fn allow_rules(a: &Allow, inbound: bool) -> Vec<Json> {
    let family = if a.addr.is_ipv4() { "ip" } else { "ip6" };
    let (addr_field, port_field) = if inbound {
        ("saddr", "sport")
    } else {
        ("daddr", "dport")
    };
    let mut exprs = vec![matches(
        payload(family, addr_field),
        json!(a.addr.to_string()),
    )];
    if inbound {
        // Inbound only what answers the host's own flows (or flows already open to it).
        exprs.push(
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}},
                                    "right": ["established", "related"]}}),
        );
    }
    let Some(port) = a.port else {
        exprs.push(json!({"accept": null}));
        return vec![json!(exprs)];
    };
    ["tcp", "udp"]
        .iter()
        .map(|proto| {
            let mut e = exprs.clone();
            e.push(matches(payload(proto, port_field), json!(port)));
            e.push(json!({"accept": null}));
            json!(e)
        })
        .collect()
}

/// The whole table as one nft JSON transaction (created, flushed, filled).
pub fn ruleset(allows: &[Allow]) -> Json {
    let table = json!({"family": "inet", "name": TABLE});
    let mut cmds = vec![
        json!({"add": {"table": table}}),
        json!({"flush": {"table": table}}),
    ];
    for (chain, hook, lo_key, inbound) in [
        ("input", "input", "iifname", true),
        ("output", "output", "oifname", false),
        ("forward", "forward", "iifname", true),
    ] {
        cmds.push(
            json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": chain,
            "type": "filter", "hook": hook, "prio": -200, "policy": "drop"}}}),
        );
        let rule = |expr: Json| {
            json!({"add": {"rule": {"family": "inet", "table": TABLE,
            "chain": chain, "expr": expr}}})
        };
        if chain != "forward" {
            cmds.push(rule(
                json!([matches(json!({"meta": {"key": lo_key}}), json!("lo")),
                                  {"accept": null}]),
            ));
        }
        for a in allows {
            for r in allow_rules(a, inbound) {
                cmds.push(rule(r));
            }
        }
    }
    json!({"nftables": cmds})
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (Debian package nftables)")?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).context("writing to nft")?;
    }
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Put the host in isolation (or replace the allow list of an isolation in force).
pub fn isolate(allows: &[Allow]) -> Result<()> {
    nft(&["-j", "-f", "-"], Some(&ruleset(allows).to_string()))?;
    Ok(())
}

/// Lift isolation: remove Aurora's table (and nothing else). Not isolated is not an error.
pub fn unisolate() -> Result<bool> {
    if !is_isolated()? {
        return Ok(false);
    }
    nft(&["delete", "table", "inet", TABLE], None)?;
    Ok(true)
}

/// Whether Aurora's table is in the kernel.
pub fn is_isolated() -> Result<bool> {
    let list = nft(&["-j", "list", "tables", "inet"], None)?;
    let doc: Json = serde_json::from_str(&list).context("parsing nft -j list tables")?;
    Ok(doc["nftables"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|i| i["table"]["name"] == TABLE && i["table"]["family"] == "inet")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_parse() {
        let a = parse_allow("10.0.0.7:4222").unwrap();
        assert_eq!(a[0].port, Some(4222));
        assert_eq!(parse_allow("fd00::1").unwrap()[0].port, None);
        assert!(parse_allow("not an address").is_err());
        let c = collectors(&["nats://user@10.0.0.7:4222".into(), "10.1.1.1:514".into()]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].to_string(), "10.0.0.7:4222");
    }

    #[test]
    fn ruleset_drops_by_default_and_lets_loopback_and_allows_through() {
        let r = ruleset(&parse_allow("10.0.0.7:4222").unwrap()).to_string();
        assert!(r.contains("\"policy\":\"drop\""), "{r}");
        assert!(r.contains("\"lo\""), "{r}");
        assert!(r.contains("10.0.0.7"), "{r}");
        assert!(r.contains("4222"), "{r}");
    }
}
