// CO-RE accessors for kernel structures, linked into the Rust eBPF programs as bitcode.
//
// Rust cannot emit BTF field-access relocations, so every read of a kernel struct field goes
// through these functions. The types below are partial: CO-RE matches fields by name against
// the running kernel's BTF, so only the fields we read are declared, and their offsets here are
// irrelevant (the loader patches them). Built with:
//   clang-22 -target bpf -O2 -g -emit-llvm -c helpers.c -o helpers.bc
// SPDX-License-Identifier: MIT OR Apache-2.0

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;

#define AURORA_API __attribute__((noinline)) __attribute__((used))

static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;

// Byte offset of a field, relocated against the running kernel (BPF_FIELD_BYTE_OFFSET).
#define CORE_OFFSET_OF(type, field) __builtin_preserve_field_info(((type *)0)->field, 0)

#define CORE_READ_INTO(dst, src)                                                              \
  bpf_probe_read_kernel((void *)(dst), sizeof(*(dst)), (const void *)__builtin_preserve_access_index(&(src)))

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
  int counter;
} atomic_t;

typedef struct {
  unsigned int val;
} kuid_t;

struct mm_struct {
  unsigned long arg_start;
  unsigned long arg_end;
  struct file *exe_file;
};

struct signal_struct {
  atomic_t live;
};

struct qstr {
  union {
    struct {
      __u32 hash;
      __u32 len;
    };
    __u64 hash_len;
  };
  const unsigned char *name;
};

struct dentry {
  struct dentry *d_parent;
  struct qstr d_name;
  struct inode *d_inode;
};

struct vfsmount {
  struct dentry *mnt_root;
};

struct mount {
  struct mount *mnt_parent;
  struct dentry *mnt_mountpoint;
  struct vfsmount mnt;
};

struct path {
  struct vfsmount *mnt;
  struct dentry *dentry;
};

struct super_block {
  unsigned int s_dev;
};

struct inode {
  unsigned short i_mode;
  unsigned long i_ino;
  struct super_block *i_sb;
};

struct file {
  struct path f_path;
  struct inode *f_inode;
  unsigned int f_mode;
};

struct filename {
  const char *name;
};

struct linux_binprm {
  struct file *file;
};

// fs/internal.h: what do_filp_open() was asked to do.
struct open_flags {
  int open_flag;
  unsigned short mode;
};

struct fdtable {
  unsigned int max_fds;
  struct file **fd;
};

struct files_struct {
  struct fdtable *fdt;
};

struct fs_struct {
  struct path pwd;
};

struct task_struct {
  struct files_struct *files;
  struct fs_struct *fs;
  int pid;
  int tgid;
  int exit_code;
  unsigned long long start_boottime;
  struct task_struct *real_parent;
  struct task_struct *group_leader;
  struct mm_struct *mm;
  struct signal_struct *signal;
  kuid_t loginuid;
  unsigned int sessionid;
};

struct trace_entry {
  unsigned short type;
  unsigned char flags;
  unsigned char preempt_count;
  int pid;
};

struct trace_event_raw_sched_process_exec {
  struct trace_entry ent;
  __u32 __data_loc_filename;
  int pid;
  int old_pid;
};

struct trace_event_raw_sys_enter {
  struct trace_entry ent;
  long id;
  unsigned long args[6];
};

struct trace_event_raw_sys_exit {
  struct trace_entry ent;
  long id;
  long ret;
};

struct trace_event_raw_inet_sock_set_state {
  struct trace_entry ent;
  const void *skaddr;
  int oldstate;
  int newstate;
  __u16 sport;
  __u16 dport;
  __u16 family;
  __u16 protocol;
  __u8 saddr[4];
  __u8 daddr[4];
  __u8 saddr_v6[16];
  __u8 daddr_v6[16];
};

struct sk_buff {
  unsigned char *head;
  unsigned char *data;
  __u16 network_header;
};

struct trace_event_raw_consume_skb {
  struct trace_entry ent;
  void *skbaddr;
};

struct trace_event_raw_net_dev_template {
  struct trace_entry ent;
  void *skbaddr;
};

// io_uring's request (io_uring/io_uring.h); only the opcode is read.
struct io_kiocb {
  __u8 opcode;
};

struct trace_event_raw_io_uring_complete {
  struct trace_entry ent;
  void *ctx;
  void *req;
  int res;
};

// inode change time across its renames: i_ctime (to 6.5), __i_ctime (6.6-6.10),
// i_ctime_sec/i_ctime_nsec (6.11+). CO-RE flavors: only the fields the running kernel has
// are read (bpf_core_field_exists).
struct timespec64 {
  long long tv_sec;
  long tv_nsec;
};

struct inode___ctime_ts {
  struct timespec64 i_ctime;
};

struct inode___ctime_dunder {
  struct timespec64 __i_ctime;
};

struct inode___ctime_split {
  long long i_ctime_sec;
  unsigned int i_ctime_nsec;
};

struct inode___size {
  long long i_size;
};

#pragma clang attribute pop

// ---- task_struct -------------------------------------------------------------------------

AURORA_API __u32 aurora_task_tgid(struct task_struct *task) {
  int v = 0;
  CORE_READ_INTO(&v, task->tgid);
  return (__u32)v;
}

AURORA_API __u32 aurora_task_pid(struct task_struct *task) {
  int v = 0;
  CORE_READ_INTO(&v, task->pid);
  return (__u32)v;
}

// Start time of the thread group (the process), in ns since boot: stable for the process's
// life and, with the tgid, unique across PID reuse. /proc/PID/stat field 22 is the same clock.
AURORA_API __u64 aurora_task_process_start(struct task_struct *task) {
  struct task_struct *leader = 0;
  __u64 v = 0;
  CORE_READ_INTO(&leader, task->group_leader);
  if (!leader)
    return 0;
  CORE_READ_INTO(&v, leader->start_boottime);
  return v;
}

AURORA_API __u32 aurora_task_ppid(struct task_struct *task) {
  struct task_struct *parent = 0;
  int v = 0;
  CORE_READ_INTO(&parent, task->real_parent);
  if (!parent)
    return 0;
  CORE_READ_INTO(&v, parent->tgid);
  return (__u32)v;
}

AURORA_API __u64 aurora_task_parent_process_start(struct task_struct *task) {
  struct task_struct *parent = 0;
  CORE_READ_INTO(&parent, task->real_parent);
  if (!parent)
    return 0;
  return aurora_task_process_start(parent);
}

AURORA_API __u32 aurora_task_loginuid(struct task_struct *task) {
  unsigned int v = 0xffffffff;
  CORE_READ_INTO(&v, task->loginuid.val);
  return v;
}

AURORA_API __u32 aurora_task_sessionid(struct task_struct *task) {
  unsigned int v = 0xffffffff;
  CORE_READ_INTO(&v, task->sessionid);
  return v;
}

AURORA_API __u32 aurora_task_exit_code(struct task_struct *task) {
  int v = 0;
  CORE_READ_INTO(&v, task->exit_code);
  return (__u32)v;
}

// 1 when no thread of the group is left alive: this exit ends the process.
AURORA_API __u32 aurora_task_group_dead(struct task_struct *task) {
  struct signal_struct *sig = 0;
  int live = 1;
  CORE_READ_INTO(&sig, task->signal);
  if (!sig)
    return 1;
  CORE_READ_INTO(&live, sig->live.counter);
  return live == 0;
}

// Fills start/end of the argv area of the task's (new) mm. Returns 0 on success.
AURORA_API int aurora_task_argv_bounds(struct task_struct *task, __u64 *start, __u64 *end) {
  struct mm_struct *mm = 0;
  unsigned long s = 0, e = 0;
  CORE_READ_INTO(&mm, task->mm);
  if (!mm)
    return -1;
  CORE_READ_INTO(&s, mm->arg_start);
  CORE_READ_INTO(&e, mm->arg_end);
  *start = s;
  *end = e;
  return 0;
}

// ---- file paths --------------------------------------------------------------------------

// Scratch layout for aurora_path_walk (PATH_SCRATCH_LEN in aurora-common): the path is built backwards ending at byte 1024, so
// every masked write stays inside the 2048-byte buffer; the write position lives in the last
// word of the buffer (see below).
#define PATH_SCRATCH_HALF AURORA_PATH_LEN
#define PATH_SCRATCH_POS (AURORA_PATH_SCRATCH_LEN - 8)
_Static_assert(AURORA_PATH_SCRATCH_LEN == 2 * AURORA_PATH_LEN, "scratch is two path buffers");
_Static_assert((AURORA_PATH_LEN & (AURORA_PATH_LEN - 1)) == 0, "masks need a power of two");
#define PATH_MAX_COMPONENTS 64
#define NAME_MASK 255

// Hides a value from the compiler's range analysis, so a mask after it is really emitted
// (libbpf's barrier_var).
#define barrier_var(var) asm volatile("" : "+r"(var))

// Absolute path of (vfsmnt, dentry), as d_path() would print it (mount points crossed; `..` and
// symlinks were resolved by the kernel when the path was looked up). Built in `scratch` (2048
// bytes), copied NUL-terminated to `out` (1024 bytes). Returns the length without the NUL, or
// a negative value when the path is deeper or longer than we walk (the caller falls back).
//
// Verifier cost: the write position is kept in map memory (volatile), not in a register. The
// verifier does not track map contents, so the states reaching the loop head after a path
// component and after a mount crossing are identical and get pruned; with the position in a
// register every iteration doubles the paths and 64 iterations exceed the 1M-insn budget.
AURORA_API int aurora_path_walk(struct vfsmount *vfsmnt, struct dentry *dentry, __u8 *scratch,
                                __u8 *out) {
  if (!vfsmnt || !dentry)
    return -1;
  struct mount *mnt = (struct mount *)((char *)vfsmnt - CORE_OFFSET_OF(struct mount, mnt));
  struct dentry *mnt_root = 0;
  CORE_READ_INTO(&mnt_root, vfsmnt->mnt_root);

  volatile __u32 *posp = (volatile __u32 *)&scratch[PATH_SCRATCH_POS];
  *posp = PATH_SCRATCH_HALF;
  int reached_root = 0;
#pragma clang loop unroll(disable)
  for (int i = 0; i < PATH_MAX_COMPONENTS; i++) {
    struct dentry *parent = 0;
    CORE_READ_INTO(&parent, dentry->d_parent);
    if (dentry == mnt_root || dentry == parent) {
      struct mount *mnt_parent = 0;
      CORE_READ_INTO(&mnt_parent, mnt->mnt_parent);
      if (dentry != mnt_root || mnt == mnt_parent || !mnt_parent) {
        // The root of the mount tree (or a detached dentry): done.
        reached_root = 1;
        break;
      }
      // Cross from the root of this mount to where it is mounted.
      CORE_READ_INTO(&dentry, mnt->mnt_mountpoint);
      mnt = mnt_parent;
      vfsmnt = (struct vfsmount *)((char *)mnt + CORE_OFFSET_OF(struct mount, mnt));
      CORE_READ_INTO(&mnt_root, vfsmnt->mnt_root);
      continue;
    }
    __u32 len = 0;
    const unsigned char *name = 0;
    CORE_READ_INTO(&len, dentry->d_name.len);
    CORE_READ_INTO(&name, dentry->d_name.name);
    len &= NAME_MASK;
    __u32 pos = *posp;
    if (pos > PATH_SCRATCH_HALF || len + 1 >= pos)
      return -1;
    pos -= len;
    // Re-mask the size right before the call. The mask above is not enough on every kernel:
    // 6.12's verifier loses len's bound through `pos -= len` (clang reuses the register) and
    // rejects the read as "R2 unbounded memory access"; 5.10, 6.1 and 6.18 accept both forms.
    barrier_var(len);
    len &= NAME_MASK;
    bpf_probe_read_kernel(&scratch[pos & (PATH_SCRATCH_HALF - 1)], len, name);
    pos -= 1;
    scratch[pos & (PATH_SCRATCH_HALF - 1)] = '/';
    *posp = pos;
    dentry = parent;
  }
  if (!reached_root)
    return -1;
  __u32 pos = *posp;
  if (pos > PATH_SCRATCH_HALF)
    return -1;
  __u32 n = PATH_SCRATCH_HALF - pos;
  if (n == 0) {
    out[0] = '/';
    out[1] = 0;
    return 1;
  }
  n &= PATH_SCRATCH_HALF - 1;
  bpf_probe_read_kernel(out, n, &scratch[pos & (PATH_SCRATCH_HALF - 1)]);
  out[n] = 0;
  return (int)n;
}

// aurora_path_walk of a `struct path` (in kernel memory, read field by field).
static __attribute__((always_inline)) int walk_struct_path(const struct path *p, __u8 *scratch,
                                                           __u8 *out) {
  struct vfsmount *vfsmnt = 0;
  struct dentry *dentry = 0;
  CORE_READ_INTO(&vfsmnt, p->mnt);
  CORE_READ_INTO(&dentry, p->dentry);
  return aurora_path_walk(vfsmnt, dentry, scratch, out);
}

// The struct file open at `fd` in `task`, or 0.
AURORA_API struct file *aurora_task_fd_file(struct task_struct *task, int fd) {
  struct files_struct *files = 0;
  struct fdtable *fdt = 0;
  struct file **fds = 0;
  struct file *file = 0;
  unsigned int max_fds = 0;
  CORE_READ_INTO(&files, task->files);
  if (!files)
    return 0;
  CORE_READ_INTO(&fdt, files->fdt);
  if (!fdt)
    return 0;
  CORE_READ_INTO(&max_fds, fdt->max_fds);
  CORE_READ_INTO(&fds, fdt->fd);
  if (fd < 0 || (unsigned int)fd >= max_fds || !fds)
    return 0;
  bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
  return file;
}

// Path of an open file (see aurora_path_walk).
AURORA_API int aurora_file_path(struct file *file, __u8 *scratch, __u8 *out) {
  if (!file)
    return -1;
  return walk_struct_path(__builtin_preserve_access_index(&file->f_path), scratch, out);
}

// FMODE_CREATED (include/linux/fs.h, bit 20 since 4.19; checked by the kernel matrix).
#define FMODE_CREATED 0x100000
#define O_TRUNC_FLAG 01000
#define S_IFMT_BITS 0170000
#define S_IFREG_BITS 0100000

// What an open did to the file (aurora_common FILE_ACTION_*): 1 when it created the file,
// 2 when it truncated an existing regular file (an overwrite), 0 otherwise.
AURORA_API __u32 aurora_file_action(struct file *file, __u32 open_flags) {
  unsigned int mode = 0;
  struct inode *inode = 0;
  unsigned short i_mode = 0;
  if (!file)
    return 0;
  CORE_READ_INTO(&mode, file->f_mode);
  if (mode & FMODE_CREATED)
    return 1;
  if (!(open_flags & O_TRUNC_FLAG))
    return 0;
  CORE_READ_INTO(&inode, file->f_inode);
  if (!inode)
    return 0;
  CORE_READ_INTO(&i_mode, inode->i_mode);
  return (i_mode & S_IFMT_BITS) == S_IFREG_BITS ? 2 : 0;
}

// open(2) flags and create mode that do_filp_open() was given.
AURORA_API __u32 aurora_open_flags(struct open_flags *op) {
  int v = 0;
  CORE_READ_INTO(&v, op->open_flag);
  return (__u32)v;
}

// Whether an open file was opened for writing (FMODE_WRITE in f_mode).
AURORA_API __u32 aurora_file_writable(struct file *file) {
  unsigned int mode = 0;
  if (!file)
    return 0;
  CORE_READ_INTO(&mode, file->f_mode);
  return (mode & 0x2) != 0;
}

// The kernel's copy of the path the caller gave (struct filename->name).
AURORA_API const char *aurora_filename_name(struct filename *name) {
  const char *v = 0;
  if (!name)
    return 0;
  CORE_READ_INTO(&v, name->name);
  return v;
}

AURORA_API __u32 aurora_open_mode(struct open_flags *op) {
  unsigned short v = 0;
  CORE_READ_INTO(&v, op->mode);
  return v;
}

// Path of the task's executable (mm->exe_file): what /proc/PID/exe links to.
AURORA_API int aurora_task_exe_path(struct task_struct *task, __u8 *scratch, __u8 *out) {
  struct mm_struct *mm = 0;
  struct file *exe = 0;
  CORE_READ_INTO(&mm, task->mm);
  if (!mm)
    return -1;
  CORE_READ_INTO(&exe, mm->exe_file);
  if (!exe)
    return -1;
  return walk_struct_path(__builtin_preserve_access_index(&exe->f_path), scratch, out);
}

// An inode's (dev, inode number) as the deny maps key it (aurora_common::FileKey): s_dev is
// the kernel's dev_t. -1 when there is no inode.
static inline __attribute__((always_inline)) int inode_key(struct inode *inode, __u64 *dev,
                                                           __u64 *ino) {
  struct super_block *sb = 0;
  unsigned int d = 0;
  unsigned long i = 0;
  if (!inode)
    return -1;
  CORE_READ_INTO(&i, inode->i_ino);
  CORE_READ_INTO(&sb, inode->i_sb);
  if (sb)
    CORE_READ_INTO(&d, sb->s_dev);
  *dev = d;
  *ino = i;
  return 0;
}

// An open file's key (its inode's); -1 when the file or its inode is unreadable.
AURORA_API int aurora_file_key(struct file *file, __u64 *dev, __u64 *ino) {
  struct inode *inode = 0;
  if (!file)
    return -1;
  CORE_READ_INTO(&inode, file->f_inode);
  return inode_key(inode, dev, ino);
}

#define CORE_FIELD_EXISTS(field) __builtin_preserve_field_info(field, 2)

// A file's change time (ns) and size: what user space's hash cache of executables is keyed
// on with (dev, inode). A write or a utimes() moves ctime, and nobody can set it back.
AURORA_API int aurora_file_stamp(struct file *file, __u64 *ctime_ns, __u64 *size) {
  struct inode *inode = 0;
  long long sec = 0, sz = 0;
  long nsec = 0;
  if (!file)
    return -1;
  CORE_READ_INTO(&inode, file->f_inode);
  if (!inode)
    return -1;
  struct inode___ctime_split *split = (void *)inode;
  struct inode___ctime_dunder *dunder = (void *)inode;
  struct inode___ctime_ts *ts = (void *)inode;
  if (CORE_FIELD_EXISTS(split->i_ctime_sec)) {
    unsigned int n = 0;
    CORE_READ_INTO(&sec, split->i_ctime_sec);
    CORE_READ_INTO(&n, split->i_ctime_nsec);
    nsec = n;
  } else if (CORE_FIELD_EXISTS(dunder->__i_ctime)) {
    CORE_READ_INTO(&sec, dunder->__i_ctime.tv_sec);
    CORE_READ_INTO(&nsec, dunder->__i_ctime.tv_nsec);
  } else if (CORE_FIELD_EXISTS(ts->i_ctime)) {
    CORE_READ_INTO(&sec, ts->i_ctime.tv_sec);
    CORE_READ_INTO(&nsec, ts->i_ctime.tv_nsec);
  } else {
    return -1;
  }
  CORE_READ_INTO(&sz, ((struct inode___size *)inode)->i_size);
  // Since 6.13 (multigrain timestamps) the top bit of i_ctime_nsec flags a ctime that stat()
  // has seen (I_CTIME_QUERIED); stat() itself reports the nanoseconds without it. A nanosecond
  // count is below 2^30, so the mask drops the flag and nothing else, on every kernel.
  nsec &= (1L << 30) - 1;
  *ctime_ns = (__u64)sec * 1000000000ULL + (__u64)nsec;
  *size = (__u64)sz;
  return 0;
}

// The file a binprm is about to run (checked per binfmt stage: a script, then its interpreter).
AURORA_API struct file *aurora_bprm_file(struct linux_binprm *bprm) {
  struct file *f = 0;
  CORE_READ_INTO(&f, bprm->file);
  return f;
}

// The dentry of an open file.
AURORA_API struct dentry *aurora_file_dentry(struct file *file) {
  struct dentry *d = 0;
  if (file)
    CORE_READ_INTO(&d, file->f_path.dentry);
  return d;
}

// A dentry's parent (itself at a filesystem's root).
AURORA_API struct dentry *aurora_dentry_parent(struct dentry *d) {
  struct dentry *p = 0;
  if (d)
    CORE_READ_INTO(&p, d->d_parent);
  return p;
}

// A dentry's key (its inode's), as aurora_file_key.
AURORA_API int aurora_dentry_key(struct dentry *d, __u64 *dev, __u64 *ino) {
  struct inode *inode = 0;
  if (!d)
    return -1;
  CORE_READ_INTO(&inode, d->d_inode);
  return inode_key(inode, dev, ino);
}

AURORA_API int aurora_task_exe_key(struct task_struct *task, __u64 *dev, __u64 *ino);

// The (dev, inode) of the task's parent's executable (real_parent->mm->exe_file): after a
// fork, the image that called exec.
AURORA_API int aurora_task_parent_exe_key(struct task_struct *task, __u64 *dev, __u64 *ino) {
  struct task_struct *parent = 0;
  CORE_READ_INTO(&parent, task->real_parent);
  if (!parent)
    return -1;
  return aurora_task_exe_key(parent, dev, ino);
}

// The task's executable (mm->exe_file), or 0.
AURORA_API struct file *aurora_task_exe_file(struct task_struct *task) {
  struct mm_struct *mm = 0;
  struct file *exe = 0;
  CORE_READ_INTO(&mm, task->mm);
  if (!mm)
    return 0;
  CORE_READ_INTO(&exe, mm->exe_file);
  return exe;
}

// The (dev, inode) of the task's executable (mm->exe_file).
AURORA_API int aurora_task_exe_key(struct task_struct *task, __u64 *dev, __u64 *ino) {
  return aurora_file_key(aurora_task_exe_file(task), dev, ino);
}

// The task's working directory (fs->pwd): what /proc/PID/cwd links to.
AURORA_API int aurora_task_cwd_path(struct task_struct *task, __u8 *scratch, __u8 *out) {
  struct fs_struct *fs = 0;
  CORE_READ_INTO(&fs, task->fs);
  if (!fs)
    return -1;
  return walk_struct_path(__builtin_preserve_access_index(&fs->pwd), scratch, out);
}

// ---- tracepoint contexts -----------------------------------------------------------------

// Offset of the filename string inside the sched_process_exec record.
AURORA_API __u32 aurora_exec_filename_offset(struct trace_event_raw_sched_process_exec *ctx) {
  __u32 loc = 0;
  CORE_READ_INTO(&loc, ctx->__data_loc_filename);
  return loc & 0xffff;
}

AURORA_API __u64 aurora_sys_enter_arg(struct trace_event_raw_sys_enter *ctx, __u32 n) {
  unsigned long v = 0;
  switch (n) {
  case 0: CORE_READ_INTO(&v, ctx->args[0]); break;
  case 1: CORE_READ_INTO(&v, ctx->args[1]); break;
  case 2: CORE_READ_INTO(&v, ctx->args[2]); break;
  case 3: CORE_READ_INTO(&v, ctx->args[3]); break;
  default: break;
  }
  return v;
}

AURORA_API long aurora_sys_exit_ret(struct trace_event_raw_sys_exit *ctx) {
  long v = 0;
  CORE_READ_INTO(&v, ctx->ret);
  return v;
}

#define IORING_OP_OPENAT 18
#define IORING_OP_OPENAT2 28

// The fd an io_uring openat/openat2 request just returned, or -1 for any other completion
// (other opcodes, failures, and kernels before 5.16 whose tracepoint carries no request).
AURORA_API int aurora_uring_open_fd(struct trace_event_raw_io_uring_complete *ctx) {
  void *req = 0;
  int res = -1;
  __u8 opcode = 0;
  if (!__builtin_preserve_field_info(ctx->req, 2 /* BPF_FIELD_EXISTS */))
    return -1;
  CORE_READ_INTO(&req, ctx->req);
  CORE_READ_INTO(&res, ctx->res);
  if (!req || res < 0)
    return -1;
  CORE_READ_INTO(&opcode, ((struct io_kiocb *)req)->opcode);
  if (opcode != IORING_OP_OPENAT && opcode != IORING_OP_OPENAT2)
    return -1;
  return res;
}

#define DNS_PAYLOAD_LEN AURORA_DNS_PAYLOAD_LEN
#define IPPROTO_UDP_NUM 17

// The skb of a consume_skb record; `softirq` tells whether it ran outside process context
// (a deferred free), where the current task is not the receiver.
AURORA_API void *aurora_consume_skb_addr(struct trace_event_raw_consume_skb *ctx, __u32 *softirq) {
  void *skb = 0;
  __u8 flags = 0;
  CORE_READ_INTO(&skb, ctx->skbaddr);
  // common_flags: TRACE_FLAG_HARDIRQ 0x08, TRACE_FLAG_SOFTIRQ 0x10, TRACE_FLAG_NMI 0x40.
  CORE_READ_INTO(&flags, ctx->ent.flags);
  *softirq = (flags & (0x08 | 0x10 | 0x40)) != 0;
  return skb;
}

// The skb of a netif_receive_skb record.
AURORA_API void *aurora_net_dev_skb_addr(struct trace_event_raw_net_dev_template *ctx) {
  void *skb = 0;
  CORE_READ_INTO(&skb, ctx->skbaddr);
  return skb;
}

// Where the UDP header of `skb` starts when it is a UDP datagram from port 53 (IPv4, or IPv6
// without extension headers), else 0; `len` gets the DNS payload length (capped). The IP header
// is found at the network header (`at_data` = 0) or at skb->data (on receive, before the stack
// has set the network header); the UDP header is found from the IP header's own length.
AURORA_API unsigned char *aurora_skb_dns(struct sk_buff *skb, __u32 at_data, __u32 *len) {
  unsigned char *head = 0, *ip = 0;
  __u16 nh = 0;
  __u8 first = 0, proto = 0;
  __u16 udp[4] = {0, 0, 0, 0};
  if (!skb)
    return 0;
  if (at_data) {
    CORE_READ_INTO(&ip, skb->data);
  } else {
    CORE_READ_INTO(&head, skb->head);
    CORE_READ_INTO(&nh, skb->network_header);
    if (!head || nh == 0xffff)
      return 0;
    ip = head + nh;
  }
  if (!ip || bpf_probe_read_kernel(&first, 1, ip))
    return 0;
  __u32 ihl;
  if ((first >> 4) == 4) {
    bpf_probe_read_kernel(&proto, 1, ip + 9);
    ihl = (first & 0x0f) * 4;
  } else if ((first >> 4) == 6) {
    bpf_probe_read_kernel(&proto, 1, ip + 6);
    ihl = 40;
  } else {
    return 0;
  }
  if (proto != IPPROTO_UDP_NUM || ihl < 20)
    return 0;
  unsigned char *uh = ip + ihl;
  if (bpf_probe_read_kernel(udp, sizeof(udp), uh))
    return 0;
  if (__builtin_bswap16(udp[0]) != 53)
    return 0;
  __u32 n = __builtin_bswap16(udp[2]);
  if (n < 8 + 12) // UDP header + DNS header
    return 0;
  n -= 8;
  *len = n > DNS_PAYLOAD_LEN ? DNS_PAYLOAD_LEN : n;
  return uh;
}

// Copy `len` bytes of DNS payload after the UDP header at `udp` into `out`.
AURORA_API int aurora_copy_dns(unsigned char *udp, __u32 len, __u8 *out) {
  barrier_var(len);
  if (len > DNS_PAYLOAD_LEN)
    return -1;
  return bpf_probe_read_kernel(out, len, udp + 8);
}

// Plain copy of an inet_sock_set_state record: aurora_common::SockState, whose layout
// build.rs passes in (AURORA_SOCK_STATE_*).
struct aurora_sock_state {
  __u64 skaddr;
  __s32 oldstate;
  __s32 newstate;
  __u16 sport;
  __u16 dport;
  __u16 family;
  __u16 protocol;
  __u8 saddr[16];
  __u8 daddr[16];
};
_Static_assert(sizeof(struct aurora_sock_state) == AURORA_SOCK_STATE_SIZE, "SockState size");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, oldstate) == AURORA_SOCK_STATE_OLDSTATE,
               "SockState.oldstate");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, newstate) == AURORA_SOCK_STATE_NEWSTATE,
               "SockState.newstate");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, sport) == AURORA_SOCK_STATE_SPORT,
               "SockState.sport");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, dport) == AURORA_SOCK_STATE_DPORT,
               "SockState.dport");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, family) == AURORA_SOCK_STATE_FAMILY,
               "SockState.family");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, protocol) == AURORA_SOCK_STATE_PROTOCOL,
               "SockState.protocol");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, saddr) == AURORA_SOCK_STATE_SADDR,
               "SockState.saddr");
_Static_assert(__builtin_offsetof(struct aurora_sock_state, daddr) == AURORA_SOCK_STATE_DADDR,
               "SockState.daddr");

AURORA_API int aurora_sock_state_read(struct trace_event_raw_inet_sock_set_state *ctx,
                                      struct aurora_sock_state *out) {
  const void *sk = 0;
  CORE_READ_INTO(&sk, ctx->skaddr);
  out->skaddr = (__u64)sk;
  CORE_READ_INTO(&out->oldstate, ctx->oldstate);
  CORE_READ_INTO(&out->newstate, ctx->newstate);
  CORE_READ_INTO(&out->sport, ctx->sport);
  CORE_READ_INTO(&out->dport, ctx->dport);
  CORE_READ_INTO(&out->family, ctx->family);
  CORE_READ_INTO(&out->protocol, ctx->protocol);
  if (out->family == 2) {
    CORE_READ_INTO((__u32 *)&out->saddr[0], ctx->saddr);
    CORE_READ_INTO((__u32 *)&out->daddr[0], ctx->daddr);
  } else {
    bpf_probe_read_kernel(out->saddr, 16, __builtin_preserve_access_index(&ctx->saddr_v6));
    bpf_probe_read_kernel(out->daddr, 16, __builtin_preserve_access_index(&ctx->daddr_v6));
  }
  return 0;
}
