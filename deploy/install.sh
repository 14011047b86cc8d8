#!/bin/sh
# Install (or --uninstall) Aurora: binary, rules, systemd unit, env file, rsyslog template.
# Idempotent: an existing /etc/default/aurora is kept. DESTDIR installs into a staging root;
# PREFIX (default /usr/local) is where the binary goes.
#   deploy/install.sh [--binary PATH] [--with-audit-rules] [--uninstall]
# --with-audit-rules also installs deploy/auditd/aurora.rules into /etc/audit/rules.d (cost:
# see that file) and loads it with augenrules when auditd runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
dest=${DESTDIR:-}
prefix=${PREFIX:-/usr/local}
bin="$top/target/release/aurora"
mode=install
audit_rules=no
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) bin=$2; shift 2 ;;
        --uninstall) mode=uninstall; shift ;;
        --with-audit-rules) audit_rules=yes; shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

systemd_running() { [ -z "$dest" ] && [ -d /run/systemd/system ]; }

if [ "$mode" = uninstall ]; then
    if systemd_running; then systemctl disable --now aurora.service 2>/dev/null || true; fi
    rm -f "$dest$prefix/bin/aurora" "$dest/etc/systemd/system/aurora.service" \
          "$dest/usr/share/doc/aurora/README.md" "$dest/usr/share/doc/aurora/rsyslog-aurora.conf" \
          "$dest/usr/share/doc/aurora/aurora-response.conf" "$dest/usr/share/doc/aurora/nats-server.conf"
    rm -rf "$dest/etc/aurora/rules"
    if [ -e "$dest/etc/audit/rules.d/aurora.rules" ]; then
        rm -f "$dest/etc/audit/rules.d/aurora.rules"
        if [ -z "$dest" ] && command -v augenrules >/dev/null && pgrep -x auditd >/dev/null; then augenrules --load; fi
    fi
    echo "aurora uninstalled (kept /etc/default/aurora and /var/log/aurora)"
    if systemd_running; then systemctl daemon-reload; fi
    exit 0
fi

[ -x "$bin" ] || { echo "install.sh: $bin not found: build it with 'cargo xtask build'" >&2; exit 1; }
install -d -m 0755 "$dest$prefix/bin" "$dest/etc/systemd/system" "$dest/etc/default" \
    "$dest/etc/aurora" "$dest/usr/share/doc/aurora"
install -d -m 0700 "$dest/var/log/aurora"
install -m 0755 "$bin" "$dest$prefix/bin/aurora"
rm -rf "$dest/etc/aurora/rules"
cp -R "$top/rules" "$dest/etc/aurora/rules"
chmod -R go-w "$dest/etc/aurora/rules"
sed "s|/usr/local/bin/aurora|$prefix/bin/aurora|" "$here/aurora.service" > "$dest/etc/systemd/system/aurora.service"
chmod 0644 "$dest/etc/systemd/system/aurora.service"
if [ ! -e "$dest/etc/default/aurora" ]; then
    install -m 0644 "$here/aurora.env" "$dest/etc/default/aurora"
else
    echo "keeping existing /etc/default/aurora"
fi
install -m 0644 "$top/README.md" "$dest/usr/share/doc/aurora/README.md"
install -m 0644 "$here/rsyslog-aurora.conf" "$dest/usr/share/doc/aurora/rsyslog-aurora.conf"
install -m 0644 "$here/auditd/aurora.rules" "$dest/usr/share/doc/aurora/aurora.rules"
install -m 0644 "$here/aurora-response.conf" "$dest/usr/share/doc/aurora/aurora-response.conf"
install -m 0644 "$here/nats/nats-server.conf" "$dest/usr/share/doc/aurora/nats-server.conf"
install -d -m 0700 "$dest/var/lib/aurora"
if [ "$audit_rules" = yes ]; then
    install -d -m 0750 "$dest/etc/audit/rules.d"
    install -m 0640 "$here/auditd/aurora.rules" "$dest/etc/audit/rules.d/aurora.rules"
    if [ -z "$dest" ] && command -v augenrules >/dev/null && pgrep -x auditd >/dev/null; then
        augenrules --load && echo "audit rules loaded (auditctl -l | grep aurora)"
    else
        echo "audit rules installed: loaded when auditd starts (augenrules --load)"
    fi
fi
echo "aurora installed into ${dest:-/}"
if systemd_running; then
    systemctl daemon-reload
    systemctl enable --now aurora.service
    echo "aurora.service enabled and started: journalctl -u aurora"
else
    echo "systemd not running here: start later with 'systemctl enable --now aurora'"
fi
