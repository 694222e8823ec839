//! What a client writes next on a complaint: the lifecycle event kinds the
//! one transition table (`lapor_shared::lifecycle::TRANSITIONS`) allows a
//! tier from a status, and a plausible body for each. Reading the table
//! here, rather than restating it, keeps the workload in step with the
//! product's rules.

use lapor_shared::domain::{SiteRole, Status};
use lapor_shared::lifecycle::{EventKind, FromStatus, Guard, TRANSITIONS};
use lapor_shared::proto::v1::{self, event_body::Kind};

use super::federation::Tier;

/// The product's role for a harness tier.
pub fn role_of(tier: Tier) -> SiteRole {
    match tier {
        Tier::Node => SiteRole::Node,
        Tier::Province => SiteRole::Province,
        Tier::National => SiteRole::National,
    }
}

/// The domain status of a proto status number.
pub fn status_of(status: i32) -> Option<Status> {
    Some(match v1::Status::try_from(status).ok()? {
        v1::Status::BelumTerverifikasi => Status::BelumTerverifikasi,
        v1::Status::Terverifikasi => Status::Terverifikasi,
        v1::Status::DalamProses => Status::DalamProses,
        v1::Status::Selesai => Status::Selesai,
        v1::Status::Ditolak => Status::Ditolak,
        v1::Status::Diarsipkan => Status::Diarsipkan,
        v1::Status::Unspecified => return None,
    })
}

/// Kinds a site of `role` may write on a complaint in `status`, by the
/// transition table.
pub fn legal_kinds(role: SiteRole, status: Status, responded: bool) -> Vec<EventKind> {
    let mut kinds: Vec<EventKind> = TRANSITIONS
        .iter()
        .filter(|t| t.kind != EventKind::Created && t.tiers.contains(&role))
        .filter(|t| match t.from {
            FromStatus::New => false,
            FromStatus::Any => true,
            FromStatus::OneOf(set) => set.contains(&status),
        })
        .filter(|t| t.guard == Guard::Always || responded)
        .map(|t| t.kind)
        .collect();
    kinds.dedup();
    kinds
}

/// Every kind a site of `role` may write at all (whatever the status).
pub fn writable_kinds(role: SiteRole) -> Vec<EventKind> {
    let mut kinds: Vec<EventKind> = TRANSITIONS
        .iter()
        .filter(|t| t.kind != EventKind::Created && t.tiers.contains(&role))
        .map(|t| t.kind)
        .collect();
    kinds.dedup();
    kinds
}

/// A plausible body for an event of `kind` written at `site`.
pub fn body_of(kind: EventKind, site: &str) -> Kind {
    let note = |what: &str| format!("{what} oleh petugas {site}");
    match kind {
        EventKind::Verified => Kind::Verified(v1::Verified {
            note: note("diverifikasi"),
            privacy: None,
        }),
        EventKind::Rejected => Kind::Rejected(v1::Rejected {
            reason: note("laporan tidak lengkap"),
        }),
        EventKind::Dispositioned => Kind::Dispositioned(v1::Dispositioned {
            from_institution: "Pemerintah Aceh".into(),
            to_institution: "Dinas PUPR".into(),
            note: note("didisposisikan"),
        }),
        EventKind::Responded => Kind::Responded(v1::Responded {
            institution: "Dinas PUPR".into(),
            body: "Perbaikan dijadwalkan minggu depan.".into(),
        }),
        EventKind::ReporterReplied => Kind::ReporterReplied(v1::ReporterReplied {
            body: "Terima kasih, kami tunggu.".into(),
        }),
        EventKind::Closed => Kind::Closed(v1::Closed {
            reason: note("selesai ditindaklanjuti"),
        }),
        EventKind::Archived => Kind::Archived(v1::Archived {
            reason: note("diarsipkan"),
        }),
        EventKind::Reopened => Kind::Reopened(v1::Reopened {
            reason: note("dibuka kembali"),
        }),
        EventKind::PrivacyTightened => Kind::PrivacyTightened(v1::PrivacyTightened {
            privacy: Some(v1::Privacy {
                is_anonymous: false,
                is_secret: true,
            }),
        }),
        // `created` is never chosen here (Submit creates); a comment keeps
        // the match total.
        EventKind::Commented | EventKind::Created => Kind::Commented(v1::Commented {
            body: note("catatan"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_decides_what_each_tier_may_write() {
        let node = legal_kinds(SiteRole::Node, Status::DalamProses, false);
        assert!(node.contains(&EventKind::Responded));
        assert!(
            !node.contains(&EventKind::Closed),
            "closing is a hub's call"
        );
        assert!(
            !node.contains(&EventKind::ReporterReplied),
            "no response yet"
        );
        assert!(
            legal_kinds(SiteRole::Node, Status::DalamProses, true)
                .contains(&EventKind::ReporterReplied)
        );
        let hub = legal_kinds(SiteRole::National, Status::Selesai, true);
        assert!(hub.contains(&EventKind::Reopened));
        assert!(!hub.contains(&EventKind::Verified));
    }
}
