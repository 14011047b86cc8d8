//! containerd's own API (gRPC over HTTP/2 on its unix socket): the containers service's `Get`
//! and `List`, in the namespaces Kubernetes (`k8s.io`) and `ctr` (`default`) use. Only the
//! fields Aurora reads are declared; prost skips the rest. The CRI labels Kubernetes puts on
//! every container name its pod and the container.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

use super::api::ApiError;
use super::ContainerMeta;

/// Namespaces asked, in order: Kubernetes' (CRI), then `ctr`'s default.
pub const NAMESPACES: &[&str] = &["k8s.io", "default"];
/// gRPC's NOT_FOUND status.
const NOT_FOUND: u32 = 5;

#[derive(Clone, PartialEq, Message)]
struct GetContainerRequest {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, Message)]
struct GetContainerResponse {
    #[prost(message, optional, tag = "1")]
    container: Option<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct ListContainersRequest {}

#[derive(Clone, PartialEq, Message)]
struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    containers: Vec<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(map = "string, string", tag = "2")]
    labels: HashMap<String, String>,
    #[prost(string, tag = "3")]
    image: String,
}

#[derive(Clone, PartialEq, Message)]
struct VersionResponse {
    #[prost(string, tag = "1")]
    version: String,
}

impl Container {
    fn into_meta(self, runtime: &Arc<str>) -> ContainerMeta {
        let label = |k: &str| {
            self.labels
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| Arc::<str>::from(v.as_str()))
        };
        ContainerMeta {
            // Kubernetes names the container in a label; `ctr` containers are their id.
            name: label("io.kubernetes.container.name").unwrap_or_else(|| self.id.as_str().into()),
            image: self.image.as_str().into(),
            image_id: "".into(),
            runtime: runtime.clone(),
            pod_name: label("io.kubernetes.pod.name"),
            pod_namespace: label("io.kubernetes.pod.namespace"),
            pod_uid: label("io.kubernetes.pod.uid"),
            labels: self.labels.len(),
        }
    }
}

/// One containerd socket.
#[derive(Clone, Debug)]
pub struct Containerd {
    pub socket: PathBuf,
}

impl Containerd {
    /// containerd's version, when a containerd answers on the socket.
    pub async fn version(&self) -> Result<String, ApiError> {
        let r: Option<VersionResponse> = self
            .unary(
                "/containerd.services.version.v1.Version/Version",
                "default",
                &(),
            )
            .await?;
        Ok(r.map(|v| v.version).unwrap_or_default())
    }

    /// Container `id`'s names from the first namespace that has it.
    pub async fn get(
        &self,
        id: &str,
        runtime: &Arc<str>,
    ) -> Result<Option<ContainerMeta>, ApiError> {
        let req = GetContainerRequest { id: id.to_owned() };
        for ns in NAMESPACES {
            let r: Option<GetContainerResponse> = self
                .unary(
                    "/containerd.services.containers.v1.Containers/Get",
                    ns,
                    &req,
                )
                .await?;
            if let Some(c) = r.and_then(|r| r.container) {
                return Ok(Some(c.into_meta(runtime)));
            }
        }
        Ok(None)
    }

    /// Ids of the containers that exist (created or running) in the namespaces asked.
    pub async fn existing(&self) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        for ns in NAMESPACES {
            let r: Option<ListContainersResponse> = self
                .unary(
                    "/containerd.services.containers.v1.Containers/List",
                    ns,
                    &ListContainersRequest {},
                )
                .await?;
            ids.extend(r.into_iter().flat_map(|r| r.containers).map(|c| c.id));
        }
        Ok(ids)
    }

    fn http(&self, e: impl std::fmt::Display) -> ApiError {
        super::api::http_error(&self.socket, e)
    }

    /// One unary call: `None` for NOT_FOUND.
    async fn unary<Req: Message, Resp: Message + Default>(
        &self,
        method: &str,
        namespace: &str,
        req: &Req,
    ) -> Result<Option<Resp>, ApiError> {
        super::api::bounded(&self.socket, method, self.call(method, namespace, req)).await
    }

    async fn call<Req: Message, Resp: Message + Default>(
        &self,
        method: &str,
        namespace: &str,
        req: &Req,
    ) -> Result<Option<Resp>, ApiError> {
        let stream = super::api::connect(&self.socket).await?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|e| self.http(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut framed = BytesMut::with_capacity(5 + req.encoded_len());
        framed.put_u8(0);
        framed.put_u32(req.encoded_len() as u32);
        req.encode(&mut framed).map_err(|e| self.http(e))?;
        let request = hyper::Request::post(format!("http://localhost{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("containerd-namespace", namespace)
            .body(Full::new(framed.freeze()))
            .map_err(|e| self.http(e))?;
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| self.http(e))?;
        // A trailers-only answer (an error) has its status in the headers.
        let header_status = grpc_status(resp.headers());
        let collected = resp.into_body().collect().await.map_err(|e| self.http(e))?;
        let status = collected
            .trailers()
            .and_then(grpc_status)
            .or(header_status)
            .unwrap_or(0);
        match status {
            0 => decode(collected.to_bytes())
                .map(Some)
                .map_err(|e| self.http(e)),
            NOT_FOUND => Ok(None),
            s => Err(self.http(format!("{method}: gRPC status {s}"))),
        }
    }
}

fn grpc_status(headers: &hyper::HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The one length-prefixed message of a unary answer.
fn decode<Resp: Message + Default>(mut body: Bytes) -> Result<Resp, String> {
    if body.len() < 5 {
        return Err("short gRPC message".into());
    }
    if body.get_u8() != 0 {
        return Err("compressed gRPC message".into());
    }
    let len = body.get_u32() as usize;
    if body.len() < len {
        return Err("truncated gRPC message".into());
    }
    Resp::decode(body.slice(..len)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_labels_name_the_pod() {
        let c = Container {
            id: "abc".into(),
            labels: [
                ("io.kubernetes.container.name", "nginx"),
                ("io.kubernetes.pod.name", "web-0"),
                ("io.kubernetes.pod.namespace", "payments"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            image: "docker.io/library/nginx:1.25".into(),
        };
        let mut framed = BytesMut::new();
        let resp = GetContainerResponse { container: Some(c) };
        framed.put_u8(0);
        framed.put_u32(resp.encoded_len() as u32);
        resp.encode(&mut framed).unwrap();
        let back: GetContainerResponse = decode(framed.freeze()).unwrap();
        let m = back.container.unwrap().into_meta(&"containerd".into());
        assert_eq!(&*m.name, "nginx");
        assert_eq!(&*m.image, "docker.io/library/nginx:1.25");
        assert_eq!(m.pod_namespace.as_deref(), Some("payments"));
        assert!(decode::<GetContainerResponse>(Bytes::from_static(b"\x01\0\0\0\0")).is_err());
        assert!(decode::<GetContainerResponse>(Bytes::from_static(b"\0\0\0\0\x09ab")).is_err());
    }
}
