//! The canonical byte encodings behind [`ComplaintState::digest`] and the
//! tie-break of the fold order.
//!
//! ```text
//! integers      big-endian, fixed width (u64; u32 for lengths)
//! strings       u32 length, then UTF-8 bytes
//! lists         u32 count, then the items
//! options       0x00 | 0x01 followed by the value
//! enums         an explicitly written tag (never a discriminant cast)
//! floats        IEEE-754 bits as u64
//! dates         "YYYY-MM-DD" as a string
//! ```
//!
//! Fields are written in a fixed order after a domain string naming the
//! encoding and its version. Never Debug output, never map iteration order:
//! the digest is compared across tiers and across releases, so changing an
//! encoding means changing its version string.

use crate::domain::{Channel, Classification, Event, EventBody, Intake, Privacy};

use super::ComplaintState;

/// A buffer being filled by the rules in the module doc.
pub(super) struct Canon(Vec<u8>);

impl Canon {
    /// Every field of a state, for [`ComplaintState::digest`].
    pub(super) fn state(s: &ComplaintState) -> Vec<u8> {
        let mut c = Canon::new(b"lapor.complaint-state.v1");
        c.uuid(s.id.0);
        c.str(&s.tracking_number.0);
        c.str(s.district.as_str());
        c.str(s.origin.as_str());
        c.intake(&s.intake);
        c.u64(s.status.code() as u64);
        c.privacy(s.privacy);
        c.len(s.dispositions.len());
        for hop in &s.dispositions {
            c.str(&hop.from_institution);
            c.str(&hop.to_institution);
            c.str(&hop.note);
            c.u64(hop.at.0);
        }
        c.u64(s.created_hlc.0);
        c.u64(s.updated_hlc.0);
        c.u64(u64::from(s.event_count));
        c.len(s.skipped.len());
        for skip in &s.skipped {
            c.uuid(skip.event_id.0);
            c.str(skip.kind);
            c.str(&skip.reason);
        }
        c.uuid(s.created_event.0);
        c.uuid(s.last_event.0);
        for mark in [
            s.verified_at,
            s.dispositioned_at,
            s.responded_at,
            s.last_reply_at,
            s.closed_at,
            s.reopened_at,
        ] {
            c.opt(mark, |c, h| c.u64(h.0));
        }
        c.0
    }

    fn new(domain: &[u8]) -> Canon {
        let mut c = Canon(Vec::with_capacity(512));
        c.bytes(domain);
        c
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        // Every length is bounded far below 4 GiB at the edge.
        self.0.extend_from_slice(&(n as u32).to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn uuid(&mut self, u: uuid::Uuid) {
        self.0.extend_from_slice(u.as_bytes());
    }

    fn bool(&mut self, b: bool) {
        self.u8(u8::from(b));
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Canon, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                f(self, v);
            }
        }
    }

    fn privacy(&mut self, p: Privacy) {
        self.bool(p.anonymous);
        self.bool(p.secret);
    }

    fn intake(&mut self, i: &Intake) {
        self.u8(match i.classification {
            Classification::Pengaduan => 1,
            Classification::Aspirasi => 2,
            Classification::PermintaanInformasi => 3,
        });
        self.u8(match i.channel {
            Channel::WalkIn => 1,
            Channel::Letter => 2,
            Channel::Sms1708 => 3,
            Channel::Phone => 4,
            Channel::Web => 5,
            Channel::LocalApp => 6,
        });
        self.str(&i.category);
        self.str(&i.title);
        self.str(&i.body);
        self.str(i.location.region.as_str());
        self.str(&i.location.description);
        self.opt(i.location.coordinates, |c, (lat, lon)| {
            c.u64(lat.to_bits());
            c.u64(lon.to_bits());
        });
        self.opt(i.incident_date, |c, d| {
            c.str(&d.format("%Y-%m-%d").to_string())
        });
        self.privacy(i.privacy);
        self.opt(i.reporter.as_ref(), |c, r| {
            c.str(&r.name);
            c.opt(r.nik.as_ref(), |c, n| c.str(&n.0));
            c.opt(r.phone.as_deref(), |c, s| c.str(s));
            c.opt(r.email.as_deref(), |c, s| c.str(s));
        });
    }

    /// An event's encoding, used only to order events deterministically.
    pub(super) fn event(e: &Event) -> Vec<u8> {
        let mut c = Canon::new(b"lapor.event.v1");
        c.uuid(e.id.0);
        c.uuid(e.complaint_id.0);
        c.str(e.origin.as_str());
        c.u64(e.hlc.0);
        c.str(&e.actor);
        c.str(e.district.as_str());
        c.str(e.body.kind());
        match &e.body {
            EventBody::Created {
                tracking_number,
                intake,
            } => {
                c.str(&tracking_number.0);
                c.intake(intake);
            }
            EventBody::Verified { note, privacy } => {
                c.str(note);
                c.privacy(*privacy);
            }
            EventBody::Dispositioned {
                from_institution,
                to_institution,
                note,
            } => {
                c.str(from_institution);
                c.str(to_institution);
                c.str(note);
            }
            EventBody::Responded { institution, body } => {
                c.str(institution);
                c.str(body);
            }
            EventBody::Rejected { reason }
            | EventBody::Closed { reason }
            | EventBody::Archived { reason }
            | EventBody::Reopened { reason } => c.str(reason),
            EventBody::ReporterReplied { body } | EventBody::Commented { body } => c.str(body),
            EventBody::PrivacyTightened { privacy } => c.privacy(*privacy),
        }
        c.0
    }
}
