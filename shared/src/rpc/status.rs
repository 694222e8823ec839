//! The one mapping from [`StoreError`] to a gRPC [`Status`], used by every
//! service on every tier so a given failure always reaches clients with the
//! same code.
//!
//! Domain refusals carry their message to the client. Internal failures
//! (SQLite, corruption, a lost writer thread) are logged here, with the full
//! source chain, and the client only learns `INTERNAL: storage failure`:
//! file paths and SQL errors are not for the network.

use std::error::Error as _;

use tonic::Status;

use crate::store::StoreError;

/// Maps a store error to the status a client receives; see the module doc.
pub fn to_status(err: StoreError) -> Status {
    match err {
        StoreError::NotFound(key) => Status::not_found(format!("complaint {key} not found")),
        StoreError::Conflict(event) => Status::already_exists(format!(
            "event {event} is already stored with different content; the conflict was recorded"
        )),
        StoreError::Rejected { reason } => Status::failed_precondition(reason),
        e @ StoreError::OutOfScope { .. } => Status::permission_denied(e.to_string()),
        StoreError::BadPageToken(token) => {
            Status::invalid_argument(format!("page_token {token:?} was not issued by this site"))
        }
        StoreError::BadFilter(reason) => Status::invalid_argument(format!("filter: {reason}")),
        StoreError::Closed => Status::unavailable("site is shutting down"),
        // A pushed batch whose predecessor did not commit; the sender
        // resumes from its Hello cursor.
        e @ StoreError::Gap { .. } => Status::aborted(e.to_string()),
        internal => {
            tracing::error!(error = %chain(&internal), "storage failure");
            Status::internal("storage failure")
        }
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Status {
        to_status(err)
    }
}

/// `top: cause: root cause`, because the store's variants keep their source
/// rather than formatting it into their message.
fn chain(err: &StoreError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::domain::EventId;

    #[test]
    fn domain_errors_map_to_precise_codes() {
        let cases = [
            (
                StoreError::NotFound("1113-K7Q-000001".into()),
                Code::NotFound,
            ),
            (StoreError::Conflict(EventId::new_v7()), Code::AlreadyExists),
            (
                StoreError::Rejected {
                    reason: "verified while Ditolak".into(),
                },
                Code::FailedPrecondition,
            ),
            (StoreError::BadPageToken("zz".into()), Code::InvalidArgument),
            (
                StoreError::BadFilter("region 9".into()),
                Code::InvalidArgument,
            ),
            (StoreError::Closed, Code::Unavailable),
            (
                StoreError::Gap {
                    peer: crate::domain::SiteCode::parse("11.13").unwrap(),
                    from: crate::domain::Seq(5),
                    held: crate::domain::Seq(0),
                },
                Code::Aborted,
            ),
            (
                StoreError::OutOfScope {
                    site: crate::domain::SiteCode::parse("11.13").unwrap(),
                    district: crate::domain::SiteCode::parse("11.71").unwrap(),
                },
                Code::PermissionDenied,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(to_status(err).code(), code);
        }
    }

    #[test]
    fn refusal_reasons_reach_the_client() {
        let status = to_status(StoreError::Rejected {
            reason: "verified while Ditolak".into(),
        });
        assert_eq!(status.message(), "verified while Ditolak");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = StoreError::Corrupt {
            seq: 7,
            reason: "bad protobuf at /var/lib/lapor/node.db".into(),
        };
        let status = to_status(err);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "storage failure");
    }
}
