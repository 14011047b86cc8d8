//! Resolving the path given to open(2) into an absolute TargetFilename.
use std::path::{Component, Path, PathBuf};

/// `base` joined with `rel`, with `.` and `..` removed lexically (the kernel resolved the real
/// path; we reconstruct it from the cwd or dirfd it was relative to).
pub fn resolve(base: &Path, rel: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    if out.as_os_str().is_empty() {
        out.push("/");
    }
    out
}

/// Whether `path` is under one of `dirs` (whole components: /tmp does not contain /tmpx).
pub fn under_any(path: &Path, dirs: &[PathBuf]) -> bool {
    dirs.is_empty() || dirs.iter().any(|d| path.starts_with(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths() {
        assert_eq!(
            resolve(Path::new("/home/a"), Path::new("x.txt")),
            Path::new("/home/a/x.txt")
        );
        assert_eq!(
            resolve(Path::new("/home/a"), Path::new("./d/../y")),
            Path::new("/home/a/y")
        );
        assert_eq!(
            resolve(Path::new("/"), Path::new("../../etc/passwd")),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            resolve(Path::new("/tmp"), Path::new("/abs")),
            Path::new("/abs")
        );
    }

    #[test]
    fn watch_dirs_match_whole_components() {
        let dirs = vec![PathBuf::from("/tmp")];
        assert!(under_any(Path::new("/tmp/x"), &dirs));
        assert!(!under_any(Path::new("/tmpx/y"), &dirs));
        assert!(under_any(Path::new("/anything"), &[]));
    }
}
