//! Podman's container store (containers/storage's `containers.json`), where `podman create`
//! writes a container's name and image before it starts. Podman's API holds a container's
//! lock while it starts, so an inspection waits until its first process ran; the store has the
//! names by then (not the labels, which the inspection adds once it answers).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::ContainerMeta;

#[derive(Deserialize)]
struct Stored {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    /// A JSON document in a string: `image-name`, `image-id`, `name`.
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize, Default)]
struct StoredMeta {
    #[serde(rename = "image-name", default)]
    image_name: String,
    #[serde(rename = "image-id", default)]
    image_id: String,
    #[serde(default)]
    name: String,
}

/// The store file under a runtime's root (`DockerRootDir` and `Driver` of its `/info`).
pub fn path(root: &str, driver: &str) -> PathBuf {
    Path::new(root).join(format!("{driver}-containers/containers.json"))
}

/// Container `id`'s names from the store's contents, if it is there.
pub fn find(contents: &[u8], id: &str, runtime: &Arc<str>) -> Option<ContainerMeta> {
    let all: Vec<Stored> = serde_json::from_slice(contents).ok()?;
    let c = all.into_iter().find(|c| c.id == id)?;
    let meta: StoredMeta = serde_json::from_str(&c.metadata).unwrap_or_default();
    let name = if meta.name.is_empty() {
        c.names.into_iter().next().unwrap_or_default()
    } else {
        meta.name
    };
    Some(ContainerMeta {
        name: name.into(),
        image: meta.image_name.into(),
        image_id: format!("sha256:{}", meta.image_id).into(),
        runtime: runtime.clone(),
        pod_name: None,
        pod_namespace: None,
        pod_uid: None,
        labels: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_in_the_store() {
        let store = br#"[{"id":"aa","names":["probe1"],"image":"59ed",
            "metadata":"{\"image-name\":\"localhost/bb:test\",\"image-id\":\"59ed\",\"name\":\"probe1\"}"},
            {"id":"bb","names":["other"],"metadata":""}]"#;
        let m = find(store, "aa", &"podman".into()).unwrap();
        assert_eq!(&*m.name, "probe1");
        assert_eq!(&*m.image, "localhost/bb:test");
        assert_eq!(&*m.image_id, "sha256:59ed");
        assert_eq!(&*find(store, "bb", &"podman".into()).unwrap().name, "other");
        assert!(find(store, "cc", &"podman".into()).is_none());
        assert!(find(b"not json", "aa", &"podman".into()).is_none());
        assert_eq!(
            path("/var/lib/containers/storage", "overlay"),
            PathBuf::from("/var/lib/containers/storage/overlay-containers/containers.json")
        );
    }
}
