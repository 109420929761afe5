//! The controllers' one error type. `category()` is a small fixed set, used as
//! the `result` label of `flowfed_reconcile_total` and as event reasons, so
//! error text (unbounded) never becomes a label.

/// A reconcile error. Invalid user input is not an error: it becomes a
/// condition, and the reconciler waits for the next change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),

    /// A value could not be (de)serialized.
    #[error("serialization failed: {0}")]
    Serialization(#[from] serde_json::Error),

    /// An object lacked a field the API server always sets (name, uid...).
    #[error("object is missing {0}")]
    MissingField(&'static str),

    /// A member cluster could not be used (cleanup waits for it).
    #[error("member cluster of node {0}: {1}")]
    Member(String, crate::catalog::member::MemberProblem),

    /// A node's home namespace is labelled for another node.
    #[error(
        "namespace {0} is the home namespace of node {1}; give this node its own spec.catalog.namespace"
    )]
    NamespaceHeld(String, String),

    /// Adding, running or removing the catalog finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A bounded label for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(status)) if status.code == 404 => "not-found",
            Error::Kube(kube::Error::Api(_)) => "api-error",
            Error::Kube(_) => "transport-error",
            Error::Serialization(_) => "serialization",
            Error::MissingField(_) => "invalid-object",
            Error::Member(..) => "member-unavailable",
            Error::NamespaceHeld(..) => "namespace-held",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.category(),
                _ => "finalizer",
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
