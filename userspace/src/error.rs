//! The one error type of the API. Each variant maps to an HTTP status on the socket and to a
//! one-line message for the user; the message is the whole story (Docker-style wording).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum XnetError {
    /// The named network or container does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists: a name or address in use, an overlapping subnet,
    /// a network with containers still attached.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is malformed: a bad CIDR, a gateway outside its subnet, ...
    #[error("{0}")]
    Invalid(String),
    /// Something the request needs does not answer (the cluster store).
    #[error("{0}")]
    Unavailable(String),
    /// The host refused: netlink, bpf, mount. Carries the cause chain in one line.
    #[error("{0}")]
    Internal(String),
}

impl XnetError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    pub fn conflict(what: impl Into<String>) -> Self {
        Self::Conflict(what.into())
    }
    pub fn invalid(what: impl Into<String>) -> Self {
        Self::Invalid(what.into())
    }
}

impl From<anyhow::Error> for XnetError {
    fn from(err: anyhow::Error) -> Self {
        // `{:#}` renders the whole context chain on one line: "creating veth: File exists".
        Self::Internal(format!("{err:#}"))
    }
}

pub type Result<T, E = XnetError> = std::result::Result<T, E>;
