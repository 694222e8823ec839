//! Who may send which events upward. One rule used by the parent to refuse
//! and by tests to reason about.
//!
//! - A district node sends events of its own district written at itself.
//! - A province hub sends events of its province's districts, written at
//!   itself or at one of its districts.
//! - An event's `district` is what its sender says: for a complaint the
//!   parent already holds, it must be the district the complaint was
//!   created in ([`check_complaint_district`]), or a node could comment on
//!   another district's complaint by naming its own district.
//! - Nobody sends to a site that is not its parent in the tree.

use crate::domain::{ComplaintId, Event, SiteCode, SiteRole};

/// Why an event or a child was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("site {child} is not a child of {parent}")]
    NotAChild { parent: SiteCode, child: SiteCode },
    #[error("event of district {district} is outside the scope of {child}")]
    District { child: SiteCode, district: SiteCode },
    #[error("event written at {origin} may not be sent by {child}")]
    Origin { child: SiteCode, origin: SiteCode },
    #[error("complaint {complaint} is of district {actual}, not {claimed}")]
    ComplaintDistrict {
        complaint: ComplaintId,
        actual: SiteCode,
        claimed: SiteCode,
    },
}

/// The site a site pushes to: a district its province, a province national,
/// national nobody.
pub fn parent_of(site: &SiteCode) -> Option<SiteCode> {
    match site.role() {
        SiteRole::Node => site.province().and_then(|p| SiteCode::parse(p).ok()),
        SiteRole::Province => Some(SiteCode::national()),
        SiteRole::National => None,
    }
}

/// Whether `child` may connect to `parent` at all.
pub fn check_child(parent: &SiteCode, child: &SiteCode) -> Result<(), ScopeError> {
    let ok = match (parent.role(), child.role()) {
        (SiteRole::Province, SiteRole::Node) => parent.covers(child),
        (SiteRole::National, SiteRole::Province) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ScopeError::NotAChild {
            parent: parent.clone(),
            child: child.clone(),
        })
    }
}

/// Whether `child` may send `event` upward.
pub fn check_event(child: &SiteCode, event: &Event) -> Result<(), ScopeError> {
    if !child.covers(&event.district) {
        return Err(ScopeError::District {
            child: child.clone(),
            district: event.district.clone(),
        });
    }
    let origin_ok = event.origin == *child
        || (child.role() == SiteRole::Province && child.covers(&event.origin));
    if !origin_ok {
        return Err(ScopeError::Origin {
            child: child.clone(),
            origin: event.origin.clone(),
        });
    }
    Ok(())
}

/// Whether `event` names the district its complaint was created in;
/// `known` is that district when the parent holds the complaint (`None`:
/// not yet, and [`check_event`] alone decides).
pub fn check_complaint_district(event: &Event, known: Option<&SiteCode>) -> Result<(), ScopeError> {
    match known {
        Some(actual) if *actual != event.district => Err(ScopeError::ComplaintDistrict {
            complaint: event.complaint_id,
            actual: actual.clone(),
            claimed: event.district.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ComplaintId, EventBody, EventId};
    use crate::hlc::Hlc;

    fn s(code: &str) -> SiteCode {
        SiteCode::parse(code).unwrap()
    }

    fn event(origin: &str, district: &str) -> Event {
        Event {
            id: EventId::new_v7(),
            complaint_id: ComplaintId::new_v7(),
            origin: s(origin),
            hlc: Hlc(1),
            actor: "a".into(),
            district: s(district),
            body: EventBody::Commented { body: "x".into() },
        }
    }

    #[test]
    fn every_site_knows_its_parent() {
        assert_eq!(parent_of(&s("11.13")), Some(s("11")));
        assert_eq!(parent_of(&s("11")), Some(s("00")));
        assert_eq!(parent_of(&s("00")), None);
        for child in [s("11.13"), s("11")] {
            assert!(check_child(&parent_of(&child).unwrap(), &child).is_ok());
        }
    }

    #[test]
    fn only_the_tree_edges_are_children() {
        assert!(check_child(&s("11"), &s("11.13")).is_ok());
        assert!(check_child(&s("00"), &s("11")).is_ok());
        assert!(check_child(&s("11"), &s("12.71")).is_err());
        assert!(
            check_child(&s("00"), &s("11.13")).is_err(),
            "nodes go through their province"
        );
        assert!(check_child(&s("11"), &s("12")).is_err());
        assert!(check_child(&s("11.13"), &s("11.04")).is_err());
    }

    #[test]
    fn a_node_sends_only_its_own_events_of_its_own_district() {
        assert!(check_event(&s("11.13"), &event("11.13", "11.13")).is_ok());
        assert!(matches!(
            check_event(&s("11.13"), &event("11.13", "11.71")),
            Err(ScopeError::District { .. })
        ));
        assert!(matches!(
            check_event(&s("11.13"), &event("11.04", "11.13")),
            Err(ScopeError::Origin { .. })
        ));
        assert!(matches!(
            check_event(&s("11.13"), &event("11", "11.13")),
            Err(ScopeError::Origin { .. })
        ));
    }

    #[test]
    fn an_event_must_name_the_district_its_complaint_was_created_in() {
        let forged = event("11.13", "11.13");
        assert!(
            check_event(&s("11.13"), &forged).is_ok(),
            "the fields alone pass"
        );
        assert!(matches!(
            check_complaint_district(&forged, Some(&s("11.71"))),
            Err(ScopeError::ComplaintDistrict { .. })
        ));
        assert!(check_complaint_district(&forged, Some(&s("11.13"))).is_ok());
        assert!(check_complaint_district(&forged, None).is_ok());
    }

    #[test]
    fn a_province_forwards_its_districts_and_its_own_events_only() {
        assert!(check_event(&s("11"), &event("11.13", "11.13")).is_ok());
        assert!(check_event(&s("11"), &event("11", "11.71")).is_ok());
        assert!(check_event(&s("11"), &event("12.71", "12.71")).is_err());
        assert!(
            check_event(&s("11"), &event("00", "11.13")).is_err(),
            "national's events are not the province's to send"
        );
    }
}
