//! Who is calling, and what that caller may see: [`caller_of`] is the one
//! place a request's caller and role are decided.
//!
//! On a mutual-TLS server the interceptor (`tls::link::Authenticate`) puts
//! the [`Caller`] it derived from the verified client certificate (its
//! subject, the role in OU) into every request's extensions, and
//! [`caller_of`] returns it. Extensions are set by server-side code only,
//! never from bytes a client sent, so a client cannot claim a role.
//!
//! Without a certificate — a plain-text server in insecure loopback mode
//! (tests, demo, a node's local listener), or a service called outside the
//! site server — the caller is an [`CallerRole::Operator`] named by its
//! remote address, and sees complaints with reporter identity redacted.
//! Nothing a request says can raise that. District staff who need identity
//! read it on the node machine itself (`lapor-node show`,
//! [`Caller::local_cli`]), which opens the store directly.

use std::fmt;

use tonic::Request;

/// What a caller is, as far as reporter identity is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallerRole {
    /// A replication peer (a child or parent site). Identity reaches peers
    /// through replication only; their Complaints reads are redacted.
    Site,
    /// Staff or tools reading complaints: identity redacted.
    Operator,
    /// Staff whose role lets them read reporter identity (LAPOR admins,
    /// the district office's intake desk). Every read is audited.
    IdentityReader,
}

impl CallerRole {
    /// Whether complaints are returned to this role with reporter identity.
    /// An anonymous complaint's identity is returned to no role.
    pub fn may_read_identity(self) -> bool {
        matches!(self, CallerRole::IdentityReader)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallerRole::Site => "site",
            CallerRole::Operator => "operator",
            CallerRole::IdentityReader => "identity-reader",
        }
    }
}

impl fmt::Display for CallerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A caller of a service (or of the store, for local tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: CallerRole,
    /// Who, for the audit log: a certificate's subject, a remote address,
    /// a local user. Never personal data of a reporter.
    pub name: String,
}

impl Caller {
    /// District staff running `lapor-node` on the node machine: they hold
    /// the data directory already, so they may read identity (audited).
    pub fn local_cli(user: &str) -> Caller {
        Caller {
            role: CallerRole::IdentityReader,
            name: format!("node-cli:{user}"),
        }
    }

    /// The actor written into audit rows.
    pub fn audit_actor(&self) -> String {
        format!("{}:{}", self.role, self.name)
    }
}

/// The caller of `request`: the [`Caller`] the TLS interceptor derived
/// from the client certificate, or else (no certificate: insecure loopback
/// mode or no site server at all) an operator named by its remote address,
/// the least-privileged role.
pub fn caller_of<T>(request: &Request<T>) -> Caller {
    if let Some(caller) = request.extensions().get::<Caller>() {
        return caller.clone();
    }
    let name = request
        .remote_addr()
        .map_or_else(|| "grpc:unknown".to_owned(), |a| format!("grpc:{a}"));
    Caller {
        role: CallerRole::Operator,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unauthenticated_request_is_an_operator_without_identity() {
        let caller = caller_of(&Request::new(()));
        assert_eq!(caller.role, CallerRole::Operator);
        assert!(!caller.role.may_read_identity());
        assert_eq!(caller.audit_actor(), "operator:grpc:unknown");
    }

    #[test]
    fn a_caller_placed_by_the_server_side_is_taken_as_is() {
        let mut request = Request::new(());
        let reader = Caller {
            role: CallerRole::IdentityReader,
            name: "cert:admin.aceh".into(),
        };
        request.extensions_mut().insert(reader.clone());
        assert_eq!(caller_of(&request), reader);
        assert!(reader.role.may_read_identity());
        assert!(!CallerRole::Site.may_read_identity());
    }
}
