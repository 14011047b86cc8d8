#!/bin/sh
# Kernel-matrix scenario, run as PID 1's child inside each VM and directly on the host:
# start `aurora record`, wait for its ready file, make one exec, file creations and one TCP
# connect over loopback, stop the agent, and print the
# ready file and the recorded events between markers for xtask to check. Then the agent
# with a policy in enforce mode: one denied exec and one denied open, the exit statuses, and
# the ready file (how this kernel enforces each) and the block events. File cases: a new
# file (relative path with ..), an append to an existing file (not a creation), a truncation
# of an existing file (an overwrite), and a file created through io_uring alone.
# Environment: AURORA (agent binary), RULES (a rule directory), WORK (scratch dir), BB (busybox binary), URING (the
# io_uring file creator, tests/helpers/uring_create.c), DNSPAIR (tests/helpers/dns_pair.c: a
# one-answer DNS server on 127.0.0.9:53 and a client that resolves a name, then connects).
set -u
# Wait for the ready file $1 of agent $2 (its log: $3).
wait_ready() {
    i=0
    while [ ! -s "$1" ]; do
        if ! kill -0 "$2" 2>/dev/null; then
            echo "AURORA-KCHECK-FAIL agent exited before it was ready:"
            cat "$3"
            exit 1
        fi
        i=$((i + 1))
        if [ "$i" -gt 3000 ]; then
            echo "AURORA-KCHECK-FAIL agent not ready within 300 s:"
            cat "$3"
            kill -9 "$2"
            exit 1
        fi
        "$BB" sleep 0.1
    done
}
mkdir -p "$WORK/sub"
cd "$WORK" || exit 1
WORK=$(pwd -P)
echo "AURORA-KCHECK-WORK $WORK"
echo before > "$WORK/kcheck-appended"
echo before > "$WORK/kcheck-overwritten"
"$AURORA" record --ready-file "$WORK/ready.json" --output "$WORK/events.jsonl" \
    2>"$WORK/agent.log" &
agent=$!
wait_ready "$WORK/ready.json" "$agent" "$WORK/agent.log"
# The agent removes its ready file when it exits: keep what it said.
cp "$WORK/ready.json" "$WORK/ready.seen"

"$BB" echo aurora-kcheck-exec-marker >/dev/null
# Every process that makes an event stays alive a moment: the agent drains its rings
# independently, and a file or connect record that overtakes its process's exec record is
# resolved through /proc — which only works while the process exists (README, Known limits).
(cd "$WORK/sub" && "$BB" sh -c 'echo created > ../sub/../kcheck-created; sleep 0.3')
"$BB" sh -c "echo more >> '$WORK/kcheck-appended'; echo new > '$WORK/kcheck-overwritten'; sleep 0.3"
"$URING" "$WORK/kcheck-uring" || echo "AURORA-KCHECK-FAIL io_uring helper failed"
"$BB" nc -l -p 47123 >/dev/null &
listener=$!
"$BB" sleep 0.5
(echo hello; "$BB" sleep 0.3) | "$BB" nc -w 2 127.0.0.1 47123
wait "$listener"
"$BB" nc -l -p 47124 >/dev/null &
listener=$!
"$BB" sleep 0.5
"$DNSPAIR" aurora-kcheck.trycloudflare.com 47124 || echo "AURORA-KCHECK-FAIL dns helper failed"
wait "$listener"
# Records are batched in the rings (drain tick 20 ms): give them time to reach the file.
"$BB" sleep 1

kill -INT "$agent"
wait "$agent"
echo "AURORA-KCHECK-AGENT-EXIT $?"
echo "AURORA-KCHECK-READY-BEGIN"
cat "$WORK/ready.seen"
echo
echo "AURORA-KCHECK-READY-END"
echo "AURORA-KCHECK-EVENTS-BEGIN"
cat "$WORK/events.jsonl"
echo "AURORA-KCHECK-EVENTS-END"

echo "AURORA-KCHECK-LSMS $(cat /sys/kernel/security/lsm 2>/dev/null)"
# A copy of busybox named as its applet (so it runs as `touch`): its own inode, denied.
mkdir -p "$WORK/kdeny"
cp "$BB" "$WORK/kdeny/touch"
echo canary > "$WORK/kcheck-canary"
printf 'mode: enforce\ndeny_exec:\n  - path: %s\ndeny_open:\n  - path: %s\n' \
    "$WORK/kdeny/touch" "$WORK/kcheck-canary" > "$WORK/policy.yml"
"$AURORA" --rules "$RULES" --no-stdout --json --logfile "$WORK/responses.jsonl" \
    --policy "$WORK/policy.yml" --ready-file "$WORK/ready2.json" 2>"$WORK/agent2.log" &
agent=$!
wait_ready "$WORK/ready2.json" "$agent" "$WORK/agent2.log"
cp "$WORK/ready2.json" "$WORK/ready2.seen"
# The denied program's first action would be to create a file: it must never run.
"$BB" sh -c "'$WORK/kdeny/touch' '$WORK/kcheck-denied-ran'" 2>/dev/null
echo "AURORA-KCHECK-EXEC-DENY $?"
"$BB" sh -c "'$BB' cat '$WORK/kcheck-canary'" >/dev/null 2>&1
echo "AURORA-KCHECK-OPEN-DENY $?"
if [ -e "$WORK/kcheck-denied-ran" ]; then echo "AURORA-KCHECK-DENIED-RAN yes"; else echo "AURORA-KCHECK-DENIED-RAN no"; fi
"$BB" sleep 1
kill -INT "$agent"
wait "$agent"
echo "AURORA-KCHECK-AGENT2-EXIT $?"
echo "AURORA-KCHECK-READY2-BEGIN"
cat "$WORK/ready2.seen"
echo
echo "AURORA-KCHECK-READY2-END"
echo "AURORA-KCHECK-RESPONSES-BEGIN"
cat "$WORK/responses.jsonl"
echo "AURORA-KCHECK-RESPONSES-END"
