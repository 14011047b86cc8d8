//! The Docker Engine API over a unix socket, which Docker and Podman (its compatible service)
//! both serve: inspect one container, list the running ones, follow container events. HTTP/1.1
//! by hyper, one connection per request (a local socket; the event stream keeps its own).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::ContainerMeta;

/// Longest wait for one request (a runtime that hangs must not stall the resolver).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read (an inspect is a few KB; a list of many containers more).
const MAX_BODY: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("{socket}: {detail}")]
    Http { socket: PathBuf, detail: String },
    #[error("{socket}: GET {path} answered {status}")]
    Status {
        socket: PathBuf,
        path: String,
        status: u16,
    },
    #[error("{socket}: GET {path}: not the expected JSON: {detail}")]
    Json {
        socket: PathBuf,
        path: String,
        detail: String,
    },
    #[error("{socket}: {path}: no answer in {secs} s", secs = REQUEST_TIMEOUT.as_secs())]
    Timeout { socket: PathBuf, path: String },
}

/// What a connected runtime is.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `docker` or `podman`.
    pub name: Arc<str>,
    /// Podman's container store, read for a container the API is still starting.
    pub store: Option<PathBuf>,
    /// containerd's gRPC API, not the Docker Engine API.
    pub containerd: bool,
}

/// `f`, or a timeout error naming `socket` and `path` after `REQUEST_TIMEOUT`.
pub(super) async fn bounded<T>(
    socket: &Path,
    path: &str,
    f: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(REQUEST_TIMEOUT, f)
        .await
        .map_err(|_| ApiError::Timeout {
            socket: socket.to_owned(),
            path: path.to_owned(),
        })?
}

/// An HTTP or protocol failure on `socket`.
pub(super) fn http_error(socket: &Path, e: impl std::fmt::Display) -> ApiError {
    ApiError::Http {
        socket: socket.to_owned(),
        detail: e.to_string(),
    }
}

/// A new connection to a runtime's socket.
pub async fn connect(socket: &Path) -> Result<tokio::net::UnixStream, ApiError> {
    tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ApiError::Connect {
            socket: socket.to_owned(),
            source,
        })
}

/// One runtime's API socket.
#[derive(Clone, Debug)]
pub struct Api {
    pub socket: PathBuf,
}

/// What `GET /containers/{id}/json` says that Aurora uses.
#[derive(Debug, Deserialize)]
struct Inspect {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image_id: String,
    #[serde(rename = "Config", default)]
    config: InspectConfig,
}

#[derive(Debug, Default, Deserialize)]
struct InspectConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Deserialize)]
struct Listed {
    #[serde(rename = "Id")]
    id: String,
}

/// One object of the `GET /events` stream (container events only are asked for).
#[derive(Debug, Deserialize)]
pub struct RuntimeEvent {
    #[serde(rename = "Action", default)]
    pub action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
}

#[derive(Debug, Default, Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
}

impl RuntimeEvent {
    pub fn container_id(&self) -> &str {
        &self.actor.id
    }
}

impl Inspect {
    fn into_meta(self, runtime: &Arc<str>) -> (String, ContainerMeta) {
        let labels = self.config.labels.unwrap_or_default();
        let label = |k: &str| {
            labels
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| v.as_str().into())
        };
        let meta = ContainerMeta {
            name: self.name.trim_start_matches('/').into(),
            image: self.config.image.into(),
            image_id: self.image_id.into(),
            runtime: runtime.clone(),
            pod_name: label("io.kubernetes.pod.name"),
            pod_namespace: label("io.kubernetes.pod.namespace"),
            pod_uid: label("io.kubernetes.pod.uid"),
            labels: labels.len(),
        };
        (self.id, meta)
    }
}

impl Api {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Api {
            socket: socket.into(),
        }
    }

    pub fn exists(&self) -> bool {
        Path::new(&self.socket).exists()
    }

    /// The runtime's metadata of one container, `None` when it does not know the id.
    pub async fn inspect(
        &self,
        id: &str,
        runtime: &Arc<str>,
    ) -> Result<Option<(String, ContainerMeta)>, ApiError> {
        let path = format!("/containers/{id}/json");
        match self.get_json::<Inspect>(&path).await {
            Ok(i) => Ok(Some(i.into_meta(runtime))),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ids of the running containers.
    pub async fn running(&self) -> Result<Vec<String>, ApiError> {
        let listed: Vec<Listed> = self.get_json("/containers/json").await?;
        Ok(listed.into_iter().map(|l| l.id).collect())
    }

    /// Which runtime answers here (the version's `Components` name Podman when it is Podman's
    /// compatible service) and, for Podman, where its container store is.
    pub async fn identify(&self) -> Result<Identity, ApiError> {
        let v: serde_json::Value = self.get_json("/version").await?;
        let podman = v["Components"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["Name"].as_str() == Some("Podman Engine"))
        });
        if !podman {
            return Ok(Identity {
                name: "docker".into(),
                store: None,
                containerd: false,
            });
        }
        let info: serde_json::Value = self.get_json("/info").await?;
        let store = match (info["DockerRootDir"].as_str(), info["Driver"].as_str()) {
            (Some(root), Some(driver)) => Some(super::store::path(root, driver)),
            _ => None,
        };
        Ok(Identity {
            name: "podman".into(),
            store,
            containerd: false,
        })
    }

    /// Follow container events; each one whole is handed to `on_event`. Returns when the
    /// runtime closes the stream (it stopped or restarted).
    pub async fn follow_events(
        &self,
        mut on_event: impl FnMut(RuntimeEvent),
    ) -> Result<(), ApiError> {
        let path = "/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D";
        let mut body = self.request(path).await?;
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.http(e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            // Objects end with a newline (Docker and Podman both write one per line).
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                if let Ok(ev) = serde_json::from_slice::<RuntimeEvent>(&line) {
                    on_event(ev);
                }
            }
            if buf.len() > MAX_BODY {
                buf.clear();
            }
        }
        Ok(())
    }

    fn http(&self, e: impl std::fmt::Display) -> ApiError {
        http_error(&self.socket, e)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let read = async {
            let body = self.request(path).await?;
            let limited = http_body_util::Limited::new(body, MAX_BODY);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| self.http(e))?
                .to_bytes();
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Json {
                socket: self.socket.clone(),
                path: path.to_owned(),
                detail: e.to_string(),
            })
        };
        bounded(&self.socket, path, read).await
    }

    /// GET `path` on a new connection: the response body once the status is 200.
    async fn request(&self, path: &str) -> Result<Incoming, ApiError> {
        let stream = connect(&self.socket).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.http(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.http(e))?;
        // The event stream's request has no outer bound: its answer's head must come in time.
        let sent = async { sender.send_request(req).await.map_err(|e| self.http(e)) };
        let resp = bounded(&self.socket, path, sent).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ApiError::Status {
                socket: self.socket.clone(),
                path: path.to_owned(),
                status,
            });
        }
        Ok(resp.into_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_fields_and_pod_labels() {
        let json = r#"{"Id":"abc","Name":"/web","Image":"sha256:1234",
            "Config":{"Image":"localhost/nginx:1","Labels":{
              "io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"payments",
              "io.kubernetes.pod.uid":"u-1","other":""}}}"#;
        let i: Inspect = serde_json::from_str(json).unwrap();
        let (id, m) = i.into_meta(&"docker".into());
        assert_eq!(id, "abc");
        assert_eq!(&*m.name, "web");
        assert_eq!(&*m.image, "localhost/nginx:1");
        assert_eq!(&*m.image_id, "sha256:1234");
        assert_eq!(m.pod_name.as_deref(), Some("web-0"));
        assert_eq!(m.pod_namespace.as_deref(), Some("payments"));
        assert_eq!(m.pod_uid.as_deref(), Some("u-1"));
        assert_eq!(m.labels, 4);
    }

    #[test]
    fn inspect_without_labels() {
        // Podman writes `"Labels": null` for a container without any.
        let i: Inspect =
            serde_json::from_str(r#"{"Id":"x","Config":{"Image":"bb","Labels":null}}"#).unwrap();
        let (_, m) = i.into_meta(&"podman".into());
        assert_eq!(m.pod_name, None);
        assert_eq!(&*m.name, "");
    }

    #[test]
    fn event_objects() {
        let e: RuntimeEvent = serde_json::from_str(
            r#"{"status":"create","id":"ab","Type":"container","Action":"create",
                "Actor":{"ID":"ab","Attributes":{"image":"bb"}},"time":1}"#,
        )
        .unwrap();
        assert_eq!(e.action, "create");
        assert_eq!(e.container_id(), "ab");
    }
}
