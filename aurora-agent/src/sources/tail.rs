//! Following a log file the way logrotate and auditd treat it: start at the end, or at a
//! persisted cursor `(dev, inode, offset)` so a restart neither loses nor repeats lines; on
//! rotation by rename drain the old file to its end, then read the new one from 0; on
//! truncation start again at 0; keep a partial last line until its newline arrives; skip (and
//! report) lines longer than the limit without holding them.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Lines longer than this are skipped and reported (auditd's own limit is 8 KiB per record;
/// EXECVE argv is split across records).
pub const MAX_LINE: usize = 64 << 10;

/// Where reading stands: the file identity and the offset after the last complete line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

/// What the tailer hands out.
#[derive(Debug, PartialEq, Eq)]
pub enum TailLine<'a> {
    Line(&'a [u8]),
    /// A line of this many bytes (at least) was skipped.
    TooLong(usize),
    /// The file shrank under us: reading restarts at 0.
    Truncated,
    /// The file was replaced (rotation): the rest is read from the new file.
    Rotated,
}

pub struct Tailer {
    path: PathBuf,
    file: Option<File>,
    cursor: Option<Cursor>,
    /// Bytes after the last newline.
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line, of which this many bytes were seen.
    skipping: Option<usize>,
    /// File offset of the next byte to read.
    read_pos: u64,
    /// Read buffer, kept between polls (a quiet file is polled 5 times a second).
    buf: Vec<u8>,
    max_line: usize,
}

impl Tailer {
    /// Open `path` at `saved` when it still names that file (or its first rotation
    /// `path.1`), at 0 when the saved file is gone (everything there is newer), else at the end.
    pub fn open(path: &Path, saved: Option<Cursor>) -> Tailer {
        let mut t = Tailer {
            path: path.to_path_buf(),
            file: None,
            cursor: None,
            partial: Vec::new(),
            skipping: None,
            read_pos: 0,
            buf: vec![0u8; 64 << 10],
            max_line: MAX_LINE,
        };
        let rotated = PathBuf::from(format!("{}.1", path.display()));
        if let Some(c) = saved {
            for p in [path, rotated.as_path()] {
                if let Ok(f) = File::open(p) {
                    if let Ok(m) = f.metadata() {
                        if (m.dev(), m.ino()) == (c.dev, c.ino) {
                            let offset = if m.len() >= c.offset { c.offset } else { 0 };
                            t.attach(f, &m, offset);
                            return t;
                        }
                    }
                }
            }
        }
        if let Ok(f) = File::open(path) {
            if let Ok(m) = f.metadata() {
                let offset = if saved.is_some() { 0 } else { m.len() };
                t.attach(f, &m, offset);
            }
        }
        t
    }

    #[cfg(test)]
    fn with_limit(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    fn attach(&mut self, mut f: File, m: &std::fs::Metadata, offset: u64) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            self.cursor = Some(Cursor {
                dev: m.dev(),
                ino: m.ino(),
                offset,
            });
            self.file = Some(f);
            self.read_pos = offset;
            self.partial.clear();
            self.skipping = None;
        }
    }

    /// The position after the last complete line handed out.
    pub fn cursor(&self) -> Option<Cursor> {
        self.cursor
    }

    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Read everything new, following rotation and truncation. Returns the bytes read.
    pub fn poll(&mut self, on: &mut dyn FnMut(TailLine<'_>)) -> std::io::Result<u64> {
        let mut total = self.drain(on)?;
        // Identity of what the path names now.
        let now = std::fs::metadata(&self.path).ok();
        match (&self.cursor, now) {
            (None, Some(_)) => {
                if let Ok(f) = File::open(&self.path) {
                    if let Ok(m) = f.metadata() {
                        self.attach(f, &m, 0);
                        total += self.drain(on)?;
                    }
                }
            }
            (Some(c), Some(m)) if (m.dev(), m.ino()) != (c.dev, c.ino) => {
                // Rotated: the old file was drained above; a last line without newline ends
                // with the file.
                if !self.partial.is_empty() {
                    let p = std::mem::take(&mut self.partial);
                    on(TailLine::Line(&p));
                }
                on(TailLine::Rotated);
                if let Ok(f) = File::open(&self.path) {
                    if let Ok(m) = f.metadata() {
                        self.attach(f, &m, 0);
                        total += self.drain(on)?;
                    }
                }
            }
            (Some(_), Some(m)) if m.len() < self.read_pos => {
                on(TailLine::Truncated);
                if let Some(f) = self.file.take() {
                    self.attach(f, &m, 0);
                    total += self.drain(on)?;
                }
            }
            _ => {}
        }
        Ok(total)
    }

    /// Read the open file to its end, handing out complete lines.
    fn drain(&mut self, on: &mut dyn FnMut(TailLine<'_>)) -> std::io::Result<u64> {
        let Some(f) = self.file.as_mut() else {
            return Ok(0);
        };
        let buf = &mut self.buf;
        let mut total = 0u64;
        loop {
            let n = match f.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            let mut pos = self.read_pos;
            self.read_pos += n as u64;
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                let nl = chunk.iter().position(|&b| b == b'\n');
                let part = &chunk[..nl.unwrap_or(chunk.len())];
                let consumed = part.len() + usize::from(nl.is_some());
                chunk = &chunk[consumed..];
                pos += consumed as u64;
                if let Some(seen) = self.skipping.as_mut() {
                    *seen += part.len();
                } else if self.partial.len() + part.len() > self.max_line {
                    self.skipping = Some(self.partial.len() + part.len());
                    self.partial = Vec::new();
                } else {
                    self.partial.extend_from_slice(part);
                }
                if nl.is_some() {
                    match self.skipping.take() {
                        Some(seen) => on(TailLine::TooLong(seen)),
                        None => on(TailLine::Line(&self.partial)),
                    }
                    self.partial.clear();
                }
                if let (Some(c), Some(_)) = (self.cursor.as_mut(), nl) {
                    c.offset = pos;
                }
            }
        }
        Ok(total)
    }
}

/// Persisted cursors, one small JSON file per followed path under the state directory.
pub struct CursorStore {
    file: PathBuf,
}

impl CursorStore {
    /// `dir/cursors/<name>.json`, the directory created 0700.
    pub fn new(dir: &Path, name: &str) -> std::io::Result<CursorStore> {
        use std::os::unix::fs::DirBuilderExt;
        let d = dir.join("cursors");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(CursorStore {
            file: d.join(format!("{safe}.json")),
        })
    }

    /// The file the cursor is kept in.
    pub fn path(&self) -> &Path {
        &self.file
    }

    pub fn load(&self) -> Option<Cursor> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, c: &Cursor) -> std::io::Result<()> {
        let tmp = self.file.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(c)?)?;
        std::fs::rename(&tmp, &self.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(t: &mut Tailer) -> Vec<String> {
        let mut out = Vec::new();
        t.poll(&mut |l| {
            out.push(match l {
                TailLine::Line(b) => String::from_utf8_lossy(b).into_owned(),
                TailLine::TooLong(n) => format!("<too long {n}>"),
                TailLine::Truncated => "<truncated>".into(),
                TailLine::Rotated => "<rotated>".into(),
            })
        })
        .unwrap();
        out
    }

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn starts_at_end_buffers_partial_lines_and_follows_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        append(&p, "old\n");
        let mut t = Tailer::open(&p, None);
        assert!(
            collect(&mut t).is_empty(),
            "existing lines are not replayed"
        );
        append(&p, "a\nb");
        assert_eq!(collect(&mut t), ["a"]);
        append(&p, "c\nd\n");
        assert_eq!(collect(&mut t), ["bc", "d"]);
        // Rotation by rename, then more lines in the old file (a writer still holding it).
        std::fs::rename(&p, d.path().join("audit.log.1")).unwrap();
        append(&d.path().join("audit.log.1"), "late\n");
        append(&p, "new\n");
        assert_eq!(collect(&mut t), ["late", "<rotated>", "new"]);
    }

    #[test]
    fn truncation_mid_line_and_long_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        append(&p, "");
        let mut t = Tailer::open(&p, None).with_limit(8);
        append(&p, "12345\nhalf");
        assert_eq!(collect(&mut t), ["12345"]);
        std::fs::write(&p, "z\n").unwrap();
        assert_eq!(collect(&mut t), ["<truncated>", "z"]);
        append(&p, "0123456789abc\nok\n");
        assert_eq!(collect(&mut t), ["<too long 13>", "ok"]);
    }

    #[test]
    fn a_saved_cursor_resumes_exactly_also_across_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.log");
        append(&p, "");
        let store = CursorStore::new(d.path(), "/var/log/a.log").unwrap();
        let mut t = Tailer::open(&p, store.load());
        append(&p, "1\n2\n");
        assert_eq!(collect(&mut t), ["1", "2"]);
        store.save(&t.cursor().unwrap()).unwrap();
        drop(t);
        // While stopped: more lines, then a rotation, then lines in the new file.
        append(&p, "3\n");
        std::fs::rename(&p, d.path().join("a.log.1")).unwrap();
        append(&p, "4\n");
        let mut t = Tailer::open(&p, store.load());
        assert_eq!(collect(&mut t), ["3", "<rotated>", "4"]);
        store.save(&t.cursor().unwrap()).unwrap();
        let mut t = Tailer::open(&p, store.load());
        assert!(collect(&mut t).is_empty(), "nothing repeated");
    }
}
