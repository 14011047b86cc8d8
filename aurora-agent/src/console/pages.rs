//! The console's pages: server-rendered HTML with a little plain JavaScript (live lists poll
//! the API or listen to server-sent events). Every value from the fleet is escaped.
use serde_json::Value;

use super::auth::{Role, Session};

/// `s` safe inside HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text (strings without quotes).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}\
header{background:#1d232b;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header .who{margin-left:auto}main{padding:1em 1.2em}\
table{border-collapse:collapse;width:100%;background:#fff}th,td{padding:.35em .6em;border-bottom:1px solid #e3e6ea;\
text-align:left;font-size:.9em;vertical-align:top}th{background:#eef1f4}.stale{color:#b00020;font-weight:600}\
.ok{color:#137333}.isolated{color:#b00020;font-weight:600}button{cursor:pointer}code{font-size:.9em}\
.level-high,.level-critical{color:#b00020;font-weight:600}.level-medium{color:#b36b00}#status{margin:.5em 0;min-height:1.2em}\
input{padding:.2em}.card{background:#fff;padding:.8em 1em;margin-bottom:1em;border:1px solid #e3e6ea}";

/// The page frame: header with navigation and the user, the CSRF token for scripts.
pub fn layout(title: &str, s: &Session, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{t} · Aurora</title>\
         <meta name=csrf content=\"{csrf}\"><meta name=role content=\"{role}\"><style>{STYLE}</style></head><body>\
         <header><b>Aurora</b><a href=\"/\" id=nav-agents>Agents</a><a href=\"/alerts\" id=nav-alerts>Alerts</a>\
         <span class=who>{user} ({role})</span><form method=post action=\"/logout\" style=margin:0>\
         <input type=hidden name=csrf value=\"{csrf}\"><button id=logout>Log out</button></form></header>\
         <main><h2>{t}</h2><div id=status></div>{body}</main>{SCRIPT}</body></html>",
        t = esc(title),
        csrf = esc(&s.csrf),
        role = s.role.name(),
        user = esc(&s.user),
    )
}

/// Shared by the pages: commands through the API, with a confirmation.
const SCRIPT: &str = "<script>\
const CSRF=document.querySelector('meta[name=csrf]').content;\
const OPERATOR=document.querySelector('meta[name=role]').content==='operator';\
function esc(s){return String(s??'').replace(/[&<>\"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','\"':'&quot;',\"'\":'&#39;'}[c]))}\
async function act(host,words){if(!confirm('Send \"'+words.join(' ')+'\" to '+host+'?'))return;\
const st=document.getElementById('status');st.textContent='sending '+words.join(' ')+' to '+host+'…';\
const r=await fetch('/api/cmd',{method:'POST',headers:{'Content-Type':'application/json','X-CSRF-Token':CSRF},\
body:JSON.stringify({host:host,words:words})});const j=await r.json();\
st.textContent=host+': '+(j.result||j.why||j.error||JSON.stringify(j));st.dataset.outcome=r.ok&&(j.ok!==false)?'ok':'failed';}\
</script>";

pub fn login(error: Option<&str>) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>Log in · Aurora</title><style>{STYLE}</style></head>\
         <body><main style=\"max-width:22em;margin:4em auto\"><h2>Aurora console</h2>{err}\
         <form method=post action=\"/login\" class=card><p><label>User<br><input name=user id=user autofocus></label></p>\
         <p><label>Password<br><input name=password id=password type=password></label></p>\
         <p><button id=login>Log in</button></p></form></main></body></html>",
        err = error
            .map(|e| format!("<p class=stale id=login-error>{}</p>", esc(e)))
            .unwrap_or_default()
    )
}

pub fn agents(s: &Session) -> String {
    let body = "<p><label>Page <input id=page type=number min=1 value=1 style=width:4em></label> \
        <span id=count></span></p><table id=agents><thead><tr><th>Host</th><th>State</th><th>Version</th>\
        <th>Kernel</th><th>Sensors</th><th>Enforcement</th><th>Rules</th><th>Isolation wanted / reported</th>\
        <th>Events/s</th><th>Alerts/s</th><th>Lost</th><th>Bundles</th><th></th></tr></thead><tbody></tbody></table>\
        <script>let prev={};async function load(){const p=document.getElementById('page').value||1;\
        const r=await fetch('/api/agents?page='+p);if(r.status===401){location='/login';return}const j=await r.json();\
        document.getElementById('count').textContent=j.total+' hosts, '+j.stale+' stale';\
        const rows=j.hosts.map(h=>{const o=prev[h.host_id];const dt=o?Math.max(h.sent-o.sent,1e-9):0;\
        const rate=(k)=>o&&dt>0?((h[k]-o[k])/dt).toFixed(1):'–';\
        const yn=b=>b===true?'<span class=isolated>isolated</span>':b===false?'open':'?';\
        const sens=Object.keys(h.sensors||{}).length+' attached, file '+esc(h.file_sensor)+(h.file_sensor_fallback?' (fallback: '+esc(h.file_sensor_fallback)+')':'');\
        const enf=Object.entries(h.enforcement||{}).map(([k,v])=>esc(k)+': '+esc(v)).join(', ')+(h.policy_mode?' · mode '+esc(h.policy_mode):'');\
        const b=Object.entries(h.bundles||{}).map(([k,v])=>esc(k)+' '+esc(v.state)).join(', ');\
        const btn=OPERATOR?'<button class=isolate data-host=\"'+esc(h.host_id)+'\">Isolate</button> <button class=unisolate data-host=\"'+esc(h.host_id)+'\">Unisolate</button> <button class=enforce data-host=\"'+esc(h.host_id)+'\">Enforce</button> <button class=audit data-host=\"'+esc(h.host_id)+'\">Audit</button>':'';\
        return '<tr id=\"host-'+esc(h.host_id)+'\"><td>'+esc(h.host_id)+'</td><td class='+(h.stale?'stale>stale':'ok>up')+'</td><td>'+esc(h.version)+'</td><td>'+esc(h.kernel)+\
        '</td><td>'+sens+'</td><td>'+enf+'</td><td>'+h.rules_active+' <code>'+esc((h.rules_digest||'').slice(0,12))+'</code></td><td class=isolation>'+yn(h.wanted_isolated)+' / '+yn(h.isolated)+\
        '</td><td>'+rate('events')+'</td><td>'+rate('alerts')+'</td><td>'+h.lost+'</td><td>'+b+'</td><td>'+btn+'</td></tr>'});\
        j.hosts.forEach(h=>prev[h.host_id]=h);document.querySelector('#agents tbody').innerHTML=rows.join('');}\
        document.addEventListener('click',e=>{const h=e.target.dataset.host;if(!h)return;\
        const w={isolate:['isolate'],unisolate:['unisolate'],enforce:['policy-mode','enforce'],audit:['policy-mode','audit']}[e.target.className];\
        if(w)act(h,w).then(load)});load();setInterval(load,2000);</script>";
    layout("Agents", s, body)
}

pub fn alerts(s: &Session) -> String {
    let body = "<p><label>Host <input id=f-host></label> <label>Rule <input id=f-rule></label> \
        <label>Level <select id=f-level><option value=''>any</option><option>low</option><option>medium</option>\
        <option>high</option><option>critical</option></select></label> <label>Since <input id=f-since type=datetime-local></label></p>\
        <table id=alerts><thead><tr><th>Time</th><th>Host</th><th>Level</th><th>Rule</th><th>Image</th><th>Response</th></tr></thead><tbody></tbody></table>\
        <script>const MAX=500;const all=[];\
        function keep(a){const h=document.getElementById('f-host').value,r=document.getElementById('f-rule').value.toLowerCase(),\
        l=document.getElementById('f-level').value,s=document.getElementById('f-since').value;\
        return(!h||a.host===h)&&(!r||String(a.title).toLowerCase().includes(r))&&(!l||a.level===l)&&(!s||new Date(a.time)>=new Date(s));}\
        function row(a){return '<tr class=alert data-seq='+a.seq+'><td>'+esc(a.time)+'</td><td>'+esc(a.host)+'</td><td class=level-'+esc(a.level)+'>'+esc(a.level)+\
        '</td><td><a href=\"/alerts/'+a.seq+'\">'+esc(a.title)+'</a></td><td>'+esc(a.image)+'</td><td>'+esc(a.response&&a.response.action||'')+'</td></tr>'}\
        function draw(){document.querySelector('#alerts tbody').innerHTML=all.filter(keep).slice(0,MAX).map(row).join('')}\
        let queued=false;function redraw(){if(queued)return;queued=true;requestAnimationFrame(()=>{queued=false;draw()})}\
        ['f-host','f-rule','f-level','f-since'].forEach(i=>document.getElementById(i).addEventListener('input',draw));\
        fetch('/api/alerts?limit='+MAX).then(r=>r.json()).then(j=>{all.push(...j);draw();\
        const es=new EventSource('/api/alerts/stream');es.onmessage=e=>{const a=JSON.parse(e.data);\
        if(all.length&&all[0].seq>=a.seq)return;all.unshift(a);if(all.length>MAX)all.pop();redraw()}});</script>";
    layout("Alerts", s, body)
}

/// One alert: the rule, the response, the process chain, every field of the event.
pub fn alert(
    s: &Session,
    seq: u64,
    host: &str,
    alert: &Value,
    chain: &[(Value, &'static str)],
) -> String {
    let rule = &alert["rule"];
    let list = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| esc(&text(x)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let refs = rule["references"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| format!("<a href=\"{0}\" rel=noreferrer>{0}</a>", esc(&text(r))))
                .collect::<Vec<_>>()
                .join("<br>")
        })
        .unwrap_or_default();
    let attack: Vec<String> = rule["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|t| t.starts_with("attack."))
        .map(esc)
        .collect();
    let response = if alert["response"].is_null() {
        "none".to_owned()
    } else {
        format!("<code>{}</code>", esc(&alert["response"].to_string()))
    };
    let kill = |guid: &str| {
        if s.role == Role::Operator && !guid.is_empty() {
            format!(
                "<button class=kill onclick='act({}, [\"kill\", {}])'>Kill</button>",
                esc(&serde_json::to_string(host).unwrap_or_default()),
                esc(&serde_json::to_string(guid).unwrap_or_default())
            )
        } else {
            String::new()
        }
    };
    let chain_rows: String = chain
        .iter()
        .map(|(p, from)| {
            let guid = text(&p["ProcessGuid"]);
            format!(
                "<tr class=process id=\"p-{g}\"><td><code>{g}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(&p["ProcessId"])),
                esc(&text(&p["Image"])),
                esc(&text(&p["CommandLine"])),
                esc(&text(&p["User"])),
                from,
                kill(&guid),
                g = esc(&guid),
            )
        })
        .collect();
    let fields: String = alert["event"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&text(v))))
        .collect();
    let body = format!(
        "<div class=card id=rule><b class=level-{lvl}>{lvl}</b> · <b>{title}</b> on <b>{host}</b> at {time}<br>\
         id <code>{id}</code> · status {status} · author {author}<br>{desc}ATT&amp;CK: {attack}<br>tags: {tags}<br>{refs}</div>\
         <div class=card>Response: {response}</div>\
         <h3>Process chain</h3><table id=chain><thead><tr><th>ProcessGuid</th><th>PID</th><th>Image</th><th>Command line</th>\
         <th>User</th><th>Known from</th><th></th></tr></thead><tbody>{chain_rows}</tbody></table>\
         <h3>Event</h3><table id=event>{fields}</table><p>stream sequence {seq}</p>",
        lvl = esc(&text(&rule["level"])),
        title = esc(&text(&rule["title"])),
        host = esc(host),
        time = esc(&text(&alert["time"])),
        id = esc(&text(&rule["id"])),
        status = esc(&text(&rule["status"])),
        author = esc(&text(&rule["author"])),
        desc = match rule["description"].as_str() {
            Some(d) => format!("{}<br>", esc(d)),
            None => String::new(),
        },
        attack = if attack.is_empty() {
            "–".into()
        } else {
            attack.join(", ")
        },
        tags = list(&rule["tags"]),
    );
    layout(&text(&rule["title"]), s, &body)
}
