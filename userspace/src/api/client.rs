//! The CLI's side of the socket: one HTTP/1 request per call over a fresh Unix connection. The
//! same client asks Docker's API (xnetd, for the names of what Docker made): both answer
//! errors as `{"message": …}`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::{
    Method, Request, StatusCode,
    body::{Bytes, Incoming},
};
use hyper_util::rt::TokioIo;
use serde::{Serialize, de::DeserializeOwned};

use super::types::ErrorBody;

/// A request the server answered with an error: its status and its message (what is shown).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// The status of a request's error, if the server answered one (not: it did not answer).
pub fn status_of(error: &anyhow::Error) -> Option<StatusCode> {
    error.downcast_ref::<ApiError>().map(|e| e.status)
}

pub struct Client {
    socket: PathBuf,
    /// Whom it talks to, for messages: xnetd or dockerd.
    server: Server,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Xnetd,
    Dockerd,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Xnetd => "xnetd",
            Server::Dockerd => "dockerd",
        }
    }
}

impl Client {
    /// xnetd's API. `host` is `unix:///path/to/socket` (Docker's `-H` form) or a bare path.
    pub fn new(host: &str) -> anyhow::Result<Self> {
        Self::to(host, Server::Xnetd)
    }

    /// Docker's API, at `host` as for [`Client::new`].
    pub fn docker(host: &str) -> anyhow::Result<Self> {
        Self::to(host, Server::Dockerd)
    }

    fn to(host: &str, server: Server) -> anyhow::Result<Self> {
        let path = host.strip_prefix("unix://").unwrap_or(host);
        if path.is_empty() || host.contains("://") && !host.starts_with("unix://") {
            let (flag, socket) = match server {
                Server::Xnetd => ("--host", "xnet.sock"),
                Server::Dockerd => ("--docker-host", "docker.sock"),
            };
            bail!("invalid {flag} {host:?}: expected unix:///path/to/{socket}");
        }
        Ok(Self {
            socket: Path::new(path).to_owned(),
            server,
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

    /// `GET path`, a stream of JSON lines (`GET /monitor`): `each` gets every non-empty line
    /// as it arrives, until the server ends the stream or `each` fails.
    pub async fn get_lines(
        &self,
        path: &str,
        mut each: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut body = self.send(Method::GET, path, None::<&()>).await?;
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.with_context(|| format!("reading {}'s stream", self.server.name()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                if !line.trim().is_empty() {
                    each(line.trim_end())?;
                }
            }
        }
        Ok(())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        let bytes = self
            .send(method, path, body)
            .await?
            .collect()
            .await?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .with_context(|| format!("decoding {}'s answer", self.server.name()))
    }

    /// Sends one request; the body of a successful answer (a failed one is its message).
    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Incoming> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.connect_error(e))?;
        let talking = || format!("talking to {}", self.server.name());
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(talking)?;
        tokio::spawn(connection);
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b)?),
            None => Bytes::new(),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.server.name())
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let response = sender.send_request(request).await.with_context(talking)?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ApiError { status, message }.into());
        }
        Ok(body)
    }

    fn connect_error(&self, err: std::io::Error) -> anyhow::Error {
        let at = self.socket.display();
        if self.server == Server::Dockerd {
            return anyhow!("cannot connect to dockerd at unix://{at}: {err}");
        }
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
