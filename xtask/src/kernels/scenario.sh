#!/bin/sh
# Kernel-matrix scenario, run as PID 1's child inside each VM and directly on the host:
# start `aurora record`, wait for its ready file, make one exec, file creations and one TCP
# connect over loopback, stop the agent, and print the
# ready file and the recorded events between markers for xtask to check. File cases: a new
# file (relative path with ..), an append to an existing file (not a creation), a truncation
# of an existing file (an overwrite), and a file created through io_uring alone.
# Environment: AURORA (agent binary), WORK (scratch dir), BB (busybox binary), URING (the
# io_uring file creator, tests/helpers/uring_create.c), DNSPAIR (tests/helpers/dns_pair.c: a
# one-answer DNS server on 127.0.0.9:53 and a client that resolves a name, then connects).
set -u
mkdir -p "$WORK/sub"
cd "$WORK" || exit 1
WORK=$(pwd -P)
echo "AURORA-KCHECK-WORK $WORK"
echo before > "$WORK/kcheck-appended"
echo before > "$WORK/kcheck-overwritten"
"$AURORA" record --ready-file "$WORK/ready.json" --output "$WORK/events.jsonl" \
    2>"$WORK/agent.log" &
agent=$!
i=0
while [ ! -s "$WORK/ready.json" ]; do
    if ! kill -0 "$agent" 2>/dev/null; then
        echo "AURORA-KCHECK-FAIL agent exited before it was ready:"
        cat "$WORK/agent.log"
        exit 1
    fi
    i=$((i + 1))
    if [ "$i" -gt 3000 ]; then
        echo "AURORA-KCHECK-FAIL agent not ready within 300 s:"
        cat "$WORK/agent.log"
        kill -9 "$agent"
        exit 1
    fi
    "$BB" sleep 0.1
done
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
