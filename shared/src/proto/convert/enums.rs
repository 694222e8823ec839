//! Wire enums and flags to domain and back. Unknown numbers (from a newer
//! peer) and UNSPECIFIED map to `None`; the caller decides whether the field
//! is required.

use crate::domain::{Channel, Classification, Privacy, Status};
use crate::proto::v1;

/// `None` for UNSPECIFIED and numbers this build does not know.
pub fn classification_from_proto(raw: i32) -> Option<Classification> {
    Some(match v1::Classification::try_from(raw).ok()? {
        v1::Classification::Unspecified => return None,
        v1::Classification::Pengaduan => Classification::Pengaduan,
        v1::Classification::Aspirasi => Classification::Aspirasi,
        v1::Classification::PermintaanInformasi => Classification::PermintaanInformasi,
    })
}

pub fn classification_to_proto(c: Classification) -> v1::Classification {
    match c {
        Classification::Pengaduan => v1::Classification::Pengaduan,
        Classification::Aspirasi => v1::Classification::Aspirasi,
        Classification::PermintaanInformasi => v1::Classification::PermintaanInformasi,
    }
}

/// `None` for UNSPECIFIED and numbers this build does not know.
pub fn channel_from_proto(raw: i32) -> Option<Channel> {
    Some(match v1::Channel::try_from(raw).ok()? {
        v1::Channel::Unspecified => return None,
        v1::Channel::WalkIn => Channel::WalkIn,
        v1::Channel::Letter => Channel::Letter,
        v1::Channel::Sms1708 => Channel::Sms1708,
        v1::Channel::Phone => Channel::Phone,
        v1::Channel::Web => Channel::Web,
        v1::Channel::LocalApp => Channel::LocalApp,
    })
}

pub fn channel_to_proto(c: Channel) -> v1::Channel {
    match c {
        Channel::WalkIn => v1::Channel::WalkIn,
        Channel::Letter => v1::Channel::Letter,
        Channel::Sms1708 => v1::Channel::Sms1708,
        Channel::Phone => v1::Channel::Phone,
        Channel::Web => v1::Channel::Web,
        Channel::LocalApp => v1::Channel::LocalApp,
    }
}

/// `None` for UNSPECIFIED and numbers this build does not know.
pub fn status_from_proto(raw: i32) -> Option<Status> {
    Some(match v1::Status::try_from(raw).ok()? {
        v1::Status::Unspecified => return None,
        v1::Status::BelumTerverifikasi => Status::BelumTerverifikasi,
        v1::Status::Terverifikasi => Status::Terverifikasi,
        v1::Status::DalamProses => Status::DalamProses,
        v1::Status::Selesai => Status::Selesai,
        v1::Status::Ditolak => Status::Ditolak,
        v1::Status::Diarsipkan => Status::Diarsipkan,
    })
}

pub fn status_to_proto(s: Status) -> v1::Status {
    match s {
        Status::BelumTerverifikasi => v1::Status::BelumTerverifikasi,
        Status::Terverifikasi => v1::Status::Terverifikasi,
        Status::DalamProses => v1::Status::DalamProses,
        Status::Selesai => v1::Status::Selesai,
        Status::Ditolak => v1::Status::Ditolak,
        Status::Diarsipkan => v1::Status::Diarsipkan,
    }
}

/// An absent `Privacy` message means no flag set.
pub fn privacy_from_proto(p: Option<v1::Privacy>) -> Privacy {
    let p = p.unwrap_or_default();
    Privacy {
        anonymous: p.is_anonymous,
        secret: p.is_secret,
    }
}

pub fn privacy_to_proto(p: Privacy) -> v1::Privacy {
    v1::Privacy {
        is_anonymous: p.anonymous,
        is_secret: p.secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_round_trip() {
        for s in Status::ALL {
            assert_eq!(status_from_proto(status_to_proto(s) as i32), Some(s));
        }
        use Classification as C;
        for c in [C::Pengaduan, C::Aspirasi, C::PermintaanInformasi] {
            assert_eq!(
                classification_from_proto(classification_to_proto(c) as i32),
                Some(c)
            );
        }
        use Channel as Ch;
        for c in [
            Ch::WalkIn,
            Ch::Letter,
            Ch::Sms1708,
            Ch::Phone,
            Ch::Web,
            Ch::LocalApp,
        ] {
            assert_eq!(channel_from_proto(channel_to_proto(c) as i32), Some(c));
        }
        for (anonymous, secret) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = Privacy { anonymous, secret };
            assert_eq!(privacy_from_proto(Some(privacy_to_proto(p))), p);
        }
    }

    #[test]
    fn unspecified_and_unknown_numbers_are_none() {
        for raw in [0, 7, -1, i32::MAX] {
            assert_eq!(status_from_proto(raw), None, "{raw}");
            assert_eq!(channel_from_proto(raw), None, "{raw}");
        }
        for raw in [0, 4, -1] {
            assert_eq!(classification_from_proto(raw), None, "{raw}");
        }
        assert_eq!(privacy_from_proto(None), Privacy::default());
    }
}
