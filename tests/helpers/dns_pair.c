// Test helper for the kernel matrix: a one-answer DNS server and its client in one static
// binary (the VMs have no DNS server). A child process answers one query on 127.0.0.9:53 with
// 127.0.0.1; this process asks it for NAME, then connects to 127.0.0.1:PORT over TCP, so the
// agent should name that connection NAME (DestinationHostname).
// Usage: dns_pair NAME PORT   (something must listen on 127.0.0.1:PORT). Exit 0 on success.
// SPDX-License-Identifier: MIT OR Apache-2.0
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int encode_query(const char *name, unsigned char *q) {
  memset(q, 0, 12);
  q[0] = 0x12, q[1] = 0x34, q[2] = 0x01, q[5] = 1; // id, RD, one question
  int n = 12;
  const char *p = name;
  while (*p) {
    const char *dot = strchr(p, '.');
    int len = dot ? (int)(dot - p) : (int)strlen(p);
    q[n++] = (unsigned char)len;
    memcpy(q + n, p, len);
    n += len;
    p += len + (dot ? 1 : 0);
  }
  q[n++] = 0;
  q[n++] = 0, q[n++] = 1; // A
  q[n++] = 0, q[n++] = 1; // IN
  return n;
}

static void serve_one(int s) {
  unsigned char buf[512];
  struct sockaddr_in peer;
  socklen_t plen = sizeof(peer);
  int n = recvfrom(s, buf, sizeof(buf) - 16, 0, (struct sockaddr *)&peer, &plen);
  if (n < 12)
    _exit(1);
  buf[2] = 0x81, buf[3] = 0x80; // response, RD, RA, no error
  buf[7] = 1;                   // one answer
  const unsigned char answer[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
  memcpy(buf + n, answer, sizeof(answer));
  sendto(s, buf, n + sizeof(answer), 0, (struct sockaddr *)&peer, plen);
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dns_pair NAME PORT\n");
    return 2;
  }
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(53)};
  inet_pton(AF_INET, "127.0.0.9", &server.sin_addr);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0 || bind(s, (struct sockaddr *)&server, sizeof(server)) < 0) {
    perror("bind 127.0.0.9:53");
    return 1;
  }
  pid_t child = fork();
  if (child == 0)
    serve_one(s);
  close(s);
  unsigned char q[512], a[512];
  int qn = encode_query(argv[1], q);
  int c = socket(AF_INET, SOCK_DGRAM, 0);
  sendto(c, q, qn, 0, (struct sockaddr *)&server, sizeof(server));
  int an = recv(c, a, sizeof(a), 0);
  waitpid(child, NULL, 0);
  if (an < qn + 16) {
    fprintf(stderr, "no answer\n");
    return 1;
  }
  struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  memcpy(&target.sin_addr, a + an - 4, 4);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(t, (struct sockaddr *)&target, sizeof(target)) < 0) {
    perror("connect");
    return 1;
  }
  close(t);
  // Stay alive a moment (see uring_create.c): the connect record may overtake the exec record.
  usleep(300 * 1000);
  return 0;
}
