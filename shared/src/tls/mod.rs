//! Mutual TLS for the federation's links: a hub's small CA ([`ca`]), what a
//! peer's certificate says about it ([`peer`]), and the deny-list of revoked
//! certificates ([`revoked`]).
//!
//! A site certificate names its site three ways: CN = the code (`11.13`), a
//! URI SAN `lapor://site/11.13` (what the server reads), and a DNS SAN
//! `site-11-13.lapor.internal` (what a client checks the server against, so
//! a child verifies *which* site answered, whatever address it dialled).
//! An operator certificate carries `lapor://operator/NAME` and its role in
//! OU. Identity comes only from a verified certificate, never from a field
//! of a message.

pub mod ca;
pub mod link;
pub mod peer;
pub mod renew;
pub mod revoked;

use crate::domain::SiteCode;

/// URI SAN prefix of a site certificate.
pub const SITE_URI_PREFIX: &str = "lapor://site/";
/// URI SAN prefix of an operator certificate.
pub const OPERATOR_URI_PREFIX: &str = "lapor://operator/";

/// The DNS name a site's server certificate carries and its children verify:
/// `site-11-13.lapor.internal`, `site-00.lapor.internal`.
pub fn site_dns_name(site: &SiteCode) -> String {
    format!("site-{}.lapor.internal", site.as_str().replace('.', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_dns_names_are_valid_host_names_per_site() {
        let node = SiteCode::parse("11.13").unwrap();
        let national = SiteCode::parse("00").unwrap();
        assert_eq!(site_dns_name(&node), "site-11-13.lapor.internal");
        assert_eq!(site_dns_name(&national), "site-00.lapor.internal");
    }
}
