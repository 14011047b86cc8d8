//! The NATS sink's disk spool: an append-only log of segment files that every message goes
//! through (write-ahead), so ordering, outages and restarts need no second path: the writer
//! (the pipeline thread) appends, the publisher reads in order and commits a cursor once
//! JetStream acknowledged. A budget bounds the bytes on disk: over it, the oldest whole
//! segments are dropped and their records counted (the events spool is trimmed before the
//! alerts spool is touched).
//!
//! Record: `len: u32 LE` (of what follows), `id_len: u16 LE`, `subject_len: u16 LE`, id,
//! subject, payload. A record cut short by a crash ends its segment (the writer always starts
//! a new segment when it opens the spool).
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 1 << 20;
const HEADER: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub subject: String,
    pub payload: Vec<u8>,
}

/// Where the publisher stands: the first record not yet acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Default)]
struct Segment {
    number: u64,
    bytes: u64,
    records: u64,
}

/// State shared by the writer and the reader of one spool.
#[derive(Debug, Default)]
struct Shared {
    segments: Vec<Segment>,
    /// The reader's committed position; segments before it are deleted.
    committed: Cursor,
    /// Records of the first segment already acknowledged.
    acked_first: u64,
    /// Records dropped by the budget, not yet reported.
    dropped: u64,
}

#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    shared: Arc<Mutex<Shared>>,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// Records in a segment file and the bytes they span (a cut-short tail is not counted),
/// stopping at `limit` bytes.
fn scan_to(path: &Path, limit: u64) -> std::io::Result<(u64, u64)> {
    let data = std::fs::read(path)?;
    let data = &data[..data.len().min(limit as usize)];
    let (mut at, mut n) = (0usize, 0u64);
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
        if at + 4 + len > data.len() {
            break;
        }
        at += 4 + len;
        n += 1;
    }
    Ok((at as u64, n))
}

impl Spool {
    /// Open (or create) the spool in `dir` and find what an earlier run left.
    pub fn open(dir: &Path) -> std::io::Result<Spool> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let committed: Cursor = std::fs::read(dir.join("cursor"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Cursor {
                segment: numbers.first().copied().unwrap_or(0),
                offset: 0,
            });
        let mut segments = Vec::new();
        for n in numbers {
            if n < committed.segment {
                let _ = std::fs::remove_file(seg_path(dir, n));
                continue;
            }
            let (bytes, records) = scan_to(&seg_path(dir, n), u64::MAX)?;
            segments.push(Segment {
                number: n,
                bytes,
                records,
            });
        }
        let acked_first = match segments.first() {
            Some(first) if first.number == committed.segment => {
                scan_to(&seg_path(dir, first.number), committed.offset)?.1
            }
            _ => 0,
        };
        Ok(Spool {
            dir: dir.to_path_buf(),
            shared: Arc::new(Mutex::new(Shared {
                segments,
                committed,
                acked_first,
                dropped: 0,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes on disk not yet acknowledged (whole segments, from the committed one).
    pub fn bytes(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.bytes).sum()
    }

    /// Records not yet acknowledged (after a restart, a partly acknowledged first segment
    /// counts whole until the publisher passes it).
    pub fn pending_records(&self) -> u64 {
        let s = self.lock();
        s.segments
            .iter()
            .map(|x| x.records)
            .sum::<u64>()
            .saturating_sub(s.acked_first)
    }

    /// Records dropped by the budget since the last call.
    pub fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.lock().dropped)
    }

    /// Drop the oldest whole segment that is not the one being written; returns the records
    /// it held (0 when there is none to drop).
    pub fn drop_oldest(&self) -> u64 {
        let mut s = self.lock();
        if s.segments.len() < 2 {
            return 0;
        }
        let seg = s.segments.remove(0);
        let _ = std::fs::remove_file(seg_path(&self.dir, seg.number));
        let next = s.segments[0].number;
        s.committed = Cursor {
            segment: next,
            offset: 0,
        };
        let lost = seg
            .records
            .saturating_sub(std::mem::take(&mut s.acked_first));
        s.dropped += lost;
        let _ = write_cursor(&self.dir, &s.committed);
        lost
    }

    /// The writer half (one per spool; it starts a fresh segment).
    pub fn writer(&self) -> std::io::Result<SpoolWriter> {
        let next = self
            .lock()
            .segments
            .last()
            .map(|s| s.number + 1)
            .unwrap_or(0);
        let mut w = SpoolWriter {
            spool: self.clone(),
            file: None,
            number: next,
            written: 0,
        };
        w.start(next)?;
        Ok(w)
    }

    /// The reader half, at the committed position.
    pub fn reader(&self) -> SpoolReader {
        let c = self.lock().committed;
        SpoolReader {
            spool: self.clone(),
            at: c,
            file: None,
        }
    }

    /// Everything before `c` (`acked` more records) was acknowledged: persist it and delete
    /// finished segments.
    pub fn commit(&self, c: Cursor, acked: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        if c.segment < s.committed.segment {
            return Ok(()); // the budget dropped past it meanwhile
        }
        s.committed = c;
        s.acked_first += acked;
        while s.segments.len() > 1 && s.segments[0].number < c.segment {
            let seg = s.segments.remove(0);
            s.acked_first = s.acked_first.saturating_sub(seg.records);
            let _ = std::fs::remove_file(seg_path(&self.dir, seg.number));
        }
        write_cursor(&self.dir, &c)
    }
}

fn write_cursor(dir: &Path, c: &Cursor) -> std::io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, serde_json::to_vec(c)?)?;
    std::fs::rename(tmp, dir.join("cursor"))
}

pub struct SpoolWriter {
    spool: Spool,
    file: Option<BufWriter<File>>,
    number: u64,
    written: u64,
}

impl SpoolWriter {
    fn start(&mut self, n: u64) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.spool.dir, n))?;
        self.file = Some(BufWriter::with_capacity(64 << 10, f));
        self.number = n;
        self.written = 0;
        self.spool.lock().segments.push(Segment {
            number: n,
            bytes: 0,
            records: 0,
        });
        Ok(())
    }

    /// Append one record (buffered until `flush`).
    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        let id = &r.id.as_bytes()[..r.id.len().min(u16::MAX as usize)];
        let subject = &r.subject.as_bytes()[..r.subject.len().min(u16::MAX as usize)];
        let len = HEADER - 4 + id.len() + subject.len() + r.payload.len();
        if self.written > 0 && self.written + 4 + len as u64 > SEGMENT_BYTES {
            self.flush()?;
            self.start(self.number + 1)?;
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("spool closed"))?;
        f.write_all(&(len as u32).to_le_bytes())?;
        f.write_all(&(id.len() as u16).to_le_bytes())?;
        f.write_all(&(subject.len() as u16).to_le_bytes())?;
        f.write_all(id)?;
        f.write_all(subject)?;
        f.write_all(&r.payload)?;
        self.written += 4 + len as u64;
        let mut s = self.spool.lock();
        if let Some(seg) = s.segments.last_mut() {
            seg.bytes += 4 + len as u64;
            seg.records += 1;
        }
        Ok(())
    }

    /// Make appended records visible to the reader.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

pub struct SpoolReader {
    spool: Spool,
    at: Cursor,
    file: Option<File>,
}

impl SpoolReader {
    /// The position after the records read so far.
    pub fn position(&self) -> Cursor {
        self.at
    }

    /// Go back to `c` (a batch failed: read it again).
    pub fn rewind(&mut self, c: Cursor) {
        self.at = c;
        self.file = None;
    }

    /// Up to `max` records from the current position; fewer (or none) when the writer has
    /// not written more yet.
    pub fn read(&mut self, max: usize) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        loop {
            // Skip what the budget dropped.
            let (floor, last) = {
                let s = self.spool.lock();
                (s.committed, s.segments.last().map(|x| x.number))
            };
            if self.at.segment < floor.segment {
                self.rewind(floor);
            }
            if self.file.is_none() {
                match File::open(seg_path(&self.spool.dir, self.at.segment)) {
                    Ok(mut f) => {
                        f.seek(SeekFrom::Start(self.at.offset))?;
                        self.file = Some(f);
                    }
                    Err(_) if last.is_some_and(|l| l > self.at.segment) => {
                        self.at = Cursor {
                            segment: self.at.segment + 1,
                            offset: 0,
                        };
                        continue;
                    }
                    Err(_) => return Ok(out),
                }
            }
            while out.len() < max {
                match self.next_record()? {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() >= max || last.is_none_or(|l| l <= self.at.segment) {
                return Ok(out);
            }
            // This segment is finished (a newer one exists): move on.
            self.at = Cursor {
                segment: self.at.segment + 1,
                offset: 0,
            };
            self.file = None;
        }
    }

    fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        let Some(f) = self.file.as_mut() else {
            return Ok(None);
        };
        let mut head = [0u8; HEADER];
        let n = read_full(f, &mut head)?;
        if n < HEADER {
            f.seek(SeekFrom::Start(self.at.offset))?;
            return Ok(None);
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let id_len = u16::from_le_bytes([head[4], head[5]]) as usize;
        let subject_len = u16::from_le_bytes([head[6], head[7]]) as usize;
        let body_len = len.saturating_sub(HEADER - 4);
        let mut body = vec![0u8; body_len];
        if read_full(f, &mut body)? < body_len || id_len + subject_len > body_len {
            f.seek(SeekFrom::Start(self.at.offset))?;
            return Ok(None);
        }
        self.at.offset += 4 + len as u64;
        let payload = body.split_off(id_len + subject_len);
        let subject = String::from_utf8_lossy(&body[id_len..]).into_owned();
        body.truncate(id_len);
        Ok(Some(Record {
            id: String::from_utf8_lossy(&body).into_owned(),
            subject,
            payload,
        }))
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize, size: usize) -> Record {
        Record {
            id: format!("id-{i}"),
            subject: "aurora.alerts.h".into(),
            payload: vec![b'x'; size],
        }
    }

    #[test]
    fn write_read_commit_and_resume_after_restart() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut w = spool.writer().unwrap();
        for i in 0..10 {
            w.append(&rec(i, 10)).unwrap();
        }
        w.flush().unwrap();
        let mut r = spool.reader();
        let got = r.read(4).unwrap();
        assert_eq!(
            got.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            ["id-0", "id-1", "id-2", "id-3"]
        );
        spool.commit(r.position(), 4).unwrap();
        drop((w, r, spool));
        // A restart: the 6 unacknowledged records come back, in order, and new ones follow.
        let spool = Spool::open(d.path()).unwrap();
        assert_eq!(spool.pending_records(), 6);
        let mut w = spool.writer().unwrap();
        w.append(&rec(10, 10)).unwrap();
        w.flush().unwrap();
        let mut r = spool.reader();
        let ids: Vec<String> = r.read(100).unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(ids, (4..=10).map(|i| format!("id-{i}")).collect::<Vec<_>>());
        spool.commit(r.position(), 7).unwrap();
        assert_eq!(spool.pending_records(), 0);
    }

    #[test]
    fn segments_roll_over_and_the_budget_drops_whole_old_segments() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut w = spool.writer().unwrap();
        let big = (SEGMENT_BYTES / 4) as usize;
        for i in 0..9 {
            w.append(&rec(i, big)).unwrap();
        }
        w.flush().unwrap();
        assert!(spool.bytes() > 2 * SEGMENT_BYTES);
        let dropped = spool.drop_oldest();
        assert_eq!(dropped, 3, "a 1 MiB segment holds three 256 KiB records");
        assert_eq!(spool.take_dropped(), 3);
        let mut r = spool.reader();
        let first = r.read(1).unwrap();
        assert_eq!(
            first[0].id, "id-3",
            "reading resumes after the dropped segment"
        );
    }

    #[test]
    fn a_torn_tail_is_not_read_and_a_restart_starts_a_new_segment() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut w = spool.writer().unwrap();
        w.append(&rec(0, 5)).unwrap();
        w.flush().unwrap();
        drop(w);
        // A crash mid-append leaves half a record.
        let seg = seg_path(d.path(), 0);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[200, 0, 0, 0, 1]).unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut w = spool.writer().unwrap();
        w.append(&rec(1, 5)).unwrap();
        w.flush().unwrap();
        let mut r = spool.reader();
        let ids: Vec<String> = r.read(10).unwrap().into_iter().map(|x| x.id).collect();
        assert_eq!(ids, ["id-0", "id-1"]);
    }
}
