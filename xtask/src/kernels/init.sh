#!/bin/busybox sh
# PID 1 of the kernel-matrix VM: mount what the agent needs, bring up loopback, run the
# scenario, power off. Output goes to the serial console, which xtask reads.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# Where the active LSM list is read from (systemd mounts it on a real host).
mount -t securityfs securityfs /sys/kernel/security
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
ip link set lo up
echo "AURORA-KCHECK-KERNEL $(uname -r)"
AURORA=/aurora RULES=/rules WORK=/tmp/work BB=/bin/busybox URING=/uring_create DNSPAIR=/dns_pair sh /scenario.sh
echo "AURORA-KCHECK-DONE $?"
poweroff -f
