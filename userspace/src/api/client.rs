//! The CLI's side of the socket: one HTTP/1 request per call over a fresh Unix connection.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, body::Bytes};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};

use super::types::ErrorBody;

pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// `host` is `unix:///path/to/socket` (Docker's `-H` form) or a bare path.
    pub fn new(host: &str) -> anyhow::Result<Self> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if path.is_empty() || host.contains("://") && !host.starts_with("unix://") {
            bail!("invalid --host {host:?}: expected unix:///path/to/xnet.sock");
        }
        Ok(Self {
            socket: Path::new(path).to_owned(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<B: Serialize>(&self, path: &str, body: &B) -> anyhow::Result<()> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("talking to xnetd")?;
        tokio::spawn(connection);
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "xnetd")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = sender
            .send_request(request)
            .await
            .context("talking to xnetd")?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(anyhow!(message));
        }
        serde_json::from_slice(&bytes).context("decoding xnetd's answer")
    }

    fn connect_error(&self, err: std::io::Error) -> anyhow::Error {
        let at = self.socket.display();
        match err.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow!(
                "permission denied while trying to connect to the xnet daemon socket at unix://{at}: xnet must run as root"
            ),
            _ => anyhow!(
                "Cannot connect to the xnet daemon at unix://{at}. Is xnetd running? ({err})"
            ),
        }
    }
}
