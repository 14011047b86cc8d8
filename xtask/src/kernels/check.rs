//! Reading what the scenario printed: the ready file (programs, verifier cost) and the events,
//! each checked for the fields a rule would use.
use anyhow::{bail, Context as _, Result};
use serde_json::Value;

/// What one kernel showed.
#[derive(Debug)]
pub struct Outcome {
    pub kernel: String,
    pub programs_loaded: usize,
    pub programs_attached: usize,
    /// (program, verifier instructions) of the costliest program, when the kernel reports it.
    pub largest: Option<(String, u64)>,
    pub events_checked: usize,
    /// The file sensor mode the agent chose ("vfs" or "tracepoint").
    pub file_sensor: String,
    /// How exec and open denies were enforced ("exec lsm, open lsm").
    pub enforcement: String,
}

fn section<'a>(out: &'a str, name: &str) -> Result<&'a str> {
    let begin = format!("AURORA-KCHECK-{name}-BEGIN\n");
    let end = format!("AURORA-KCHECK-{name}-END");
    let start = out
        .find(&begin)
        .with_context(|| format!("no {name} section in the scenario output"))?
        + begin.len();
    let len = out[start..]
        .find(&end)
        .with_context(|| format!("{name} section not closed"))?;
    Ok(&out[start..start + len])
}

/// What follows `key` on its line. The marker may not start the line: the firmware's terminal
/// escapes (clear screen) can land in front of the first lines the VM prints.
fn line_value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.find(key).map(|i| &l[i + key.len()..]))
        .map(str::trim)
}

/// Whether the scenario ran at all (a VM that failed to boot never prints this).
pub fn started(out: &str) -> bool {
    line_value(out, "AURORA-KCHECK-WORK").is_some()
}

/// The last lines of a console, for failure messages.
pub fn tail(out: &str, n: usize) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn s<'a>(e: &'a Value, k: &str) -> &'a str {
    e.get(k).and_then(Value::as_str).unwrap_or("")
}

fn find<'a>(
    events: &'a [Value],
    id: i64,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<&'a Value> {
    events
        .iter()
        .find(|e| e["EventID"].as_i64() == Some(id) && pred(e))
        .with_context(|| format!("no {what} event"))
}

fn expect(cond: bool, what: &str, e: &Value) -> Result<()> {
    if !cond {
        bail!("{what}: {e}");
    }
    Ok(())
}

/// Check the scenario's output; any missing or wrong field is an error naming it.
/// `in_vm`: the kernel runs under QEMU, where nothing refuses BPF trampolines: a kernel with
/// `bpf` among its active LSMs must enforce through BPF LSM there.
pub fn check(out: &str, in_vm: bool) -> Result<Outcome> {
    if let Some(fail) = out.lines().find(|l| l.contains("AURORA-KCHECK-FAIL")) {
        let tail: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.contains("AURORA-KCHECK-FAIL"))
            .take(40)
            .collect();
        bail!("{fail}\n{}", tail.join("\n"));
    }
    let work = line_value(out, "AURORA-KCHECK-WORK")
        .with_context(|| format!("scenario did not start; console:\n{}", tail(out, 40)))?;
    let exit = line_value(out, "AURORA-KCHECK-AGENT-EXIT").context("agent exit not reported")?;
    if exit != "0" {
        bail!("aurora record exited with status {exit}");
    }
    let ready: Value =
        serde_json::from_str(section(out, "READY")?.trim()).context("ready file is not JSON")?;
    let programs = ready["programs"]
        .as_array()
        .context("ready file has no programs")?;
    let largest = programs
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                p["verified_insns"].as_u64()?,
            ))
        })
        .max_by_key(|(_, n)| *n);
    check_events(out, work)?;
    let enforcement = check_enforcement(out, in_vm)?;
    Ok(Outcome {
        enforcement,
        kernel: ready["kernel"].as_str().unwrap_or("?").to_owned(),
        file_sensor: ready["file_sensor"]["mode"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
        programs_loaded: programs.len(),
        programs_attached: programs
            .iter()
            .filter(|p| p["attached"] == Value::Bool(true))
            .count(),
        largest,
        events_checked: 8,
    })
}

/// The events the scenario caused, each with the fields a rule would use.
fn check_events(out: &str, work: &str) -> Result<()> {
    let events: Vec<Value> = section(out, "EVENTS")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("recorded events are not JSON lines")?;

    let busybox = |e: &Value| s(e, "Image").starts_with('/') && s(e, "Image").ends_with("/busybox");
    let exec = find(&events, 1, "process_creation for the marker exec", |e| {
        s(e, "CommandLine").contains("aurora-kcheck-exec-marker")
    })?;
    expect(
        busybox(exec),
        "exec Image is not the absolute busybox path",
        exec,
    )?;
    expect(
        s(exec, "CurrentDirectory") == work,
        "exec CurrentDirectory",
        exec,
    )?;
    expect(s(exec, "User") == "root", "exec User", exec)?;
    expect(
        exec["ParentProcessId"].as_i64().unwrap_or(0) > 0,
        "exec ParentProcessId",
        exec,
    )?;
    let pid = exec["ProcessId"].as_i64().context("exec ProcessId")?;
    find(&events, 5, "process_termination of the marker exec", |e| {
        e["ProcessId"].as_i64() == Some(pid)
    })?;
    let file_event = |name: &str| {
        let path = format!("{work}/{name}");
        find(&events, 11, &format!("file_event for {path}"), move |e| {
            s(e, "TargetFilename") == path
        })
    };
    let file = file_event("kcheck-created")?;
    expect(busybox(file), "file_event Image", file)?;
    expect(
        s(file, "FileAction") == "created",
        "new file FileAction",
        file,
    )?;
    let over = file_event("kcheck-overwritten")?;
    expect(
        s(over, "FileAction") == "overwritten",
        "truncated file FileAction",
        over,
    )?;
    if let Ok(e) = file_event("kcheck-appended") {
        bail!("an append to an existing file was reported as a creation: {e}");
    }
    let uring = file_event("kcheck-uring")?;
    expect(
        s(uring, "Image").ends_with("/uring_create"),
        "io_uring file_event Image (the submitting process)",
        uring,
    )?;
    expect(
        s(uring, "FileAction") == "created",
        "io_uring FileAction",
        uring,
    )?;
    let net = find(
        &events,
        3,
        "outbound network_connection to 127.0.0.1:47123",
        |e| e["DestinationPort"].as_i64() == Some(47123) && s(e, "Initiated") == "true",
    )?;
    expect(
        s(net, "DestinationIp") == "127.0.0.1",
        "network DestinationIp",
        net,
    )?;
    expect(busybox(net), "network Image", net)?;
    let named = find(
        &events,
        3,
        "connection after a DNS answer (port 47124)",
        |e| e["DestinationPort"].as_i64() == Some(47124) && s(e, "Initiated") == "true",
    )?;
    expect(
        s(named, "DestinationHostname") == "aurora-kcheck.trycloudflare.com",
        "DestinationHostname from the DNS answer",
        named,
    )?;
    expect(
        s(named, "Image").ends_with("/dns_pair"),
        "DNS client Image",
        named,
    )?;
    Ok(())
}

/// The enforcement phase: how the agent said it enforces each operation, and that the denied
/// exec and open were stopped accordingly, with one block event each.
fn check_enforcement(out: &str, in_vm: bool) -> Result<String> {
    let exit = line_value(out, "AURORA-KCHECK-AGENT2-EXIT").context("agent2 exit not reported")?;
    if exit != "0" {
        bail!("the agent with a policy exited with status {exit}");
    }
    let ready: Value = serde_json::from_str(section(out, "READY2")?.trim())
        .context("the policy run's ready file is not JSON")?;
    let mech = |op: &str| -> Result<(String, String)> {
        let e = ready["enforcement"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["operation"] == op))
            .with_context(|| format!("no {op} enforcement in the ready file: {ready}"))?;
        Ok((s(e, "mechanism").to_owned(), s(e, "reason").to_owned()))
    };
    let (exec, exec_why) = mech("exec")?;
    let (open, open_why) = mech("open")?;
    let lsms = line_value(out, "AURORA-KCHECK-LSMS").unwrap_or_default();
    let bpf_lsm = lsms.split(',').any(|m| m.trim() == "bpf");
    if in_vm && bpf_lsm && (exec != "lsm" || open != "lsm") {
        bail!("BPF LSM is active ({lsms}) but not used: exec {exec} ({exec_why}), open {open} ({open_why})");
    }
    // Without securityfs the list is unknown: the agent tries BPF LSM and says why it fell back.
    let said_why = if lsms.is_empty() {
        !exec_why.is_empty()
    } else {
        exec_why.contains("no `bpf` in the active LSM list")
    };
    if !bpf_lsm && (exec == "lsm" || !said_why) {
        bail!("no BPF LSM ({lsms}): the fallback must run and say why; exec {exec} ({exec_why})");
    }
    let status = |key: &str| line_value(out, key).unwrap_or("?").to_owned();
    let (exec_status, open_status) = (
        status("AURORA-KCHECK-EXEC-DENY"),
        status("AURORA-KCHECK-OPEN-DENY"),
    );
    // EPERM: the shell cannot execute (126), cat cannot open (1); a kill: 128 + 9.
    let want = |m: &str, eperm: &str| {
        if m == "lsm" {
            eperm.to_owned()
        } else {
            "137".into()
        }
    };
    if exec_status != want(&exec, "126") {
        bail!("exec deny ({exec}): exit status {exec_status}");
    }
    if line_value(out, "AURORA-KCHECK-DENIED-RAN") != Some("no") {
        bail!("the denied program ran");
    }
    if open != "none" && open_status != want(&open, "1") {
        bail!("open deny ({open}): exit status {open_status}");
    }
    let blocks: Vec<Value> = section(out, "RESPONSES")?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("the policy run's alerts are not JSON lines")?;
    let action = |m: &str| if m == "lsm" { "blocked" } else { "killed" };
    for (op, m) in [("exec", &exec), ("open", &open)] {
        if m == "none" {
            continue;
        }
        let n = blocks
            .iter()
            .filter(|a| a["rule"]["id"] == "aurora-response" && a["event"]["Operation"] == op)
            .filter(|a| a["event"]["Action"] == action(m) && a["event"]["Mode"] == "enforce")
            .count();
        if n != 1 {
            bail!("{n} block events for the {op} deny ({m}); alerts: {blocks:?}");
        }
    }
    Ok(format!("exec {exec}, open {open}"))
}
