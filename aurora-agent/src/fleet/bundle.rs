//! Signed bundles of rules or policies. A bundle is one JSON document (its files, by path
//! below the bundle's root, with their text); the object that carries it in `AURORA_BUNDLES`
//! holds, as metadata, the document's sha256 and an ed25519 signature of those bytes with the
//! fleet key (`nkeys`, the NATS ecosystem's ed25519 keys, already a dependency of the client).
//! An agent checks the digest, then the signature with the public key it was given, then the
//! content (`unpack`: relative paths only), before anything is validated or swapped.
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// What a bundle carries; also its object's name in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    Rules,
    Policy,
}

impl BundleKind {
    pub const ALL: [BundleKind; 2] = [BundleKind::Rules, BundleKind::Policy];

    pub fn name(self) -> &'static str {
        match self {
            BundleKind::Rules => "rules",
            BundleKind::Policy => "policy",
        }
    }
}

/// Object metadata keys.
pub const META_SHA256: &str = "aurora-sha256";
pub const META_SIGNATURE: &str = "aurora-signature";
pub const META_KEY: &str = "aurora-key";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Relative to the bundle's root, `/`-separated.
    pub path: String,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: u32,
    pub kind: BundleKind,
    /// RFC 3339, when it was packed.
    pub created: String,
    pub files: Vec<BundleFile>,
}

/// A packed, signed bundle: the bytes stored and the metadata that vouches for them.
#[derive(Clone, Debug)]
pub struct Signed {
    pub payload: Vec<u8>,
    pub metadata: HashMap<String, String>,
}

impl Signed {
    pub fn sha256(&self) -> &str {
        self.metadata
            .get(META_SHA256)
            .map(String::as_str)
            .unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("no {0} in the bundle's metadata")]
    Missing(&'static str),
    #[error("digest mismatch: the bundle hashes to {actual}, its metadata says {stated}")]
    Digest { actual: String, stated: String },
    #[error("signature does not verify with the fleet key {0}")]
    Signature(String),
    #[error("unreadable bundle: {0}")]
    Format(String),
    #[error("bundle holds a {found} bundle where {wanted} was expected")]
    Kind {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("bundle path {0:?}: only relative paths without '..' may be unpacked")]
    Path(String),
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

impl Bundle {
    /// The rule files under `dir` (as `rules check` finds them) or the given policy files.
    pub fn from_paths(kind: BundleKind, paths: &[PathBuf]) -> Result<Bundle> {
        let mut files = Vec::new();
        for root in paths {
            let found: Vec<PathBuf> = if root.is_dir() {
                crate::detect::rules::rule_files(root)?
            } else {
                vec![root.clone()]
            };
            for f in found {
                let rel = if root.is_dir() {
                    f.strip_prefix(root).unwrap_or(&f).to_path_buf()
                } else {
                    PathBuf::from(f.file_name().context("a file name")?)
                };
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?;
                files.push(BundleFile {
                    path: rel.to_string_lossy().replace('\\', "/"),
                    text,
                });
            }
        }
        if files.is_empty() {
            anyhow::bail!("nothing to bundle");
        }
        Ok(Bundle {
            format: 1,
            kind,
            created: chrono::Utc::now().to_rfc3339(),
            files,
        })
    }

    /// Pack and sign with `key` (a seed).
    pub fn sign(&self, key: &KeyPair) -> Result<Signed> {
        let payload = serde_json::to_vec(self)?;
        let signature = key
            .sign(&payload)
            .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        let metadata = HashMap::from([
            (META_SHA256.to_owned(), sha256_hex(&payload)),
            (
                META_SIGNATURE.to_owned(),
                data_encoding::HEXLOWER.encode(&signature),
            ),
            (META_KEY.to_owned(), key.public_key()),
        ]);
        Ok(Signed { payload, metadata })
    }

    /// Write the files below `dir` (created), refusing any path that would leave it.
    pub fn unpack(&self, dir: &Path) -> Result<()> {
        for f in &self.files {
            let rel = Path::new(&f.path);
            if f.path.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(BundleError::Path(f.path.clone()).into());
            }
            let to = dir.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&to, &f.text).with_context(|| format!("writing {}", to.display()))?;
        }
        Ok(())
    }
}

/// Store a signed bundle as the newest of its kind.
pub async fn put(stores: &super::Stores, kind: BundleKind, signed: &Signed) -> Result<()> {
    let meta = async_nats::jetstream::object_store::ObjectMetadata {
        name: kind.name().to_owned(),
        description: Some(format!("aurora {} bundle", kind.name())),
        metadata: signed.metadata.clone(),
        ..Default::default()
    };
    let mut data = signed.payload.as_slice();
    stores
        .bundles
        .put(meta, &mut data)
        .await
        .with_context(|| format!("storing the {} bundle", kind.name()))?;
    Ok(())
}

/// Check `payload` against its metadata with the fleet's public key, then read it.
pub fn verify(
    payload: &[u8],
    metadata: &HashMap<String, String>,
    public_key: &str,
    wanted: BundleKind,
) -> Result<Bundle, BundleError> {
    let stated = metadata
        .get(META_SHA256)
        .ok_or(BundleError::Missing(META_SHA256))?;
    let actual = sha256_hex(payload);
    if &actual != stated {
        return Err(BundleError::Digest {
            actual,
            stated: stated.clone(),
        });
    }
    let signature = metadata
        .get(META_SIGNATURE)
        .and_then(|s| data_encoding::HEXLOWER.decode(s.as_bytes()).ok())
        .ok_or(BundleError::Missing(META_SIGNATURE))?;
    let key = KeyPair::from_public_key(public_key)
        .map_err(|_| BundleError::Signature(public_key.to_owned()))?;
    key.verify(payload, &signature)
        .map_err(|_| BundleError::Signature(public_key.to_owned()))?;
    let bundle: Bundle =
        serde_json::from_slice(payload).map_err(|e| BundleError::Format(e.to_string()))?;
    if bundle.kind != wanted {
        return Err(BundleError::Kind {
            found: bundle.kind.name(),
            wanted: wanted.name(),
        });
    }
    Ok(bundle)
}

/// A new signing key: (seed, public key), nkeys text forms.
pub fn generate_key() -> Result<(String, String)> {
    let kp = KeyPair::new_operator();
    let seed = kp.seed().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((seed, kp.public_key()))
}

/// The public key in `path` (the first word of its first non-comment line).
pub fn read_public_key(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--fleet-key {}", path.display()))?;
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("")
        .to_owned();
    KeyPair::from_public_key(&key).map_err(|e| {
        anyhow::anyhow!(
            "--fleet-key {}: not a public signing key ({e})",
            path.display()
        )
    })?;
    Ok(key)
}

/// The signing key (seed) in `path`.
pub fn read_seed(path: &Path) -> Result<KeyPair> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--key {}", path.display()))?;
    KeyPair::from_seed(text.trim())
        .map_err(|e| anyhow::anyhow!("--key {}: not a signing key seed ({e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        Bundle {
            format: 1,
            kind: BundleKind::Rules,
            created: "2026-01-01T00:00:00Z".into(),
            files: vec![BundleFile {
                path: "a/r.yml".into(),
                text: "title: x\n".into(),
            }],
        }
    }

    #[test]
    fn signed_bundles_verify_and_others_say_why_not() {
        let key = KeyPair::new_operator();
        let other = KeyPair::new_operator();
        let s = bundle().sign(&key).unwrap();
        let pk = key.public_key();
        assert_eq!(
            verify(&s.payload, &s.metadata, &pk, BundleKind::Rules).unwrap(),
            bundle()
        );
        let e = verify(
            &s.payload,
            &s.metadata,
            &other.public_key(),
            BundleKind::Rules,
        );
        assert!(matches!(e, Err(BundleError::Signature(_))), "{e:?}");
        let e = verify(&s.payload, &s.metadata, &pk, BundleKind::Policy);
        assert!(matches!(e, Err(BundleError::Kind { .. })), "{e:?}");
        let mut tampered = s.payload.clone();
        tampered[10] ^= 1;
        let e = verify(&tampered, &s.metadata, &pk, BundleKind::Rules);
        assert!(matches!(e, Err(BundleError::Digest { .. })), "{e:?}");
        let mut meta = s.metadata.clone();
        meta.insert(META_SHA256.into(), sha256_hex(&tampered));
        let e = verify(&tampered, &meta, &pk, BundleKind::Rules);
        assert!(matches!(e, Err(BundleError::Signature(_))), "{e:?}");
    }

    #[test]
    fn unpack_refuses_paths_that_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x.yml", "/etc/x.yml", "a/../../x.yml", ""] {
            let mut b = bundle();
            b.files[0].path = bad.into();
            assert!(b.unpack(dir.path()).is_err(), "{bad}");
        }
        bundle().unpack(dir.path()).unwrap();
        assert!(dir.path().join("a/r.yml").is_file());
    }
}
